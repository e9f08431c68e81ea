#!/usr/bin/perl

# nginx's auth_basic logs the user name of a failed basic auth at the error
# level ("user ... was not found", "user ...: password mismatch") as sent.
# Since the name is base64 in the Authorization header, it can hold a line
# break or an escape sequence that would forge or hide a line of the error
# log. The module rejects such a name with 400 before auth_basic reads it.

use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $tag = join '', map { ('a'..'z')[rand 26] } 1 .. 12;

# Each case: a name and the user name. The password is always "pw".
my @bad = (
    [ 'lf',   "evil\n2026/01/01 00.00.00 [emerg] 1#1 forged-$tag" ],
    [ 'cr',   "evil\rforged-$tag" ],
    [ 'esc',  "evil\e[2Jforged-$tag" ],
    [ 'del',  "evil\x7fforged-$tag" ],
    [ 'csi',  "evil\xc2\x9b2Jforged-$tag" ],
    [ 'raw',  "evil\x9b2Jforged-$tag" ],
    [ 'line', "evil\xe2\x80\xa8forged-$tag" ],
);

for my $case (@bad) {
    my ($name, $user) = @$case;
    my $credential = encode_base64("$user:pw", '');

    my $r = $t->request('GET', '/admin/api/limits',
        headers => { Authorization => "Basic $credential" });
    is($r->{status}, 400, "$name user status");
    is($r->{json} && $r->{json}{error}{code}, 'invalid_request',
       "$name user code");
}

# nginx takes the scheme name in any case, so the check must too.
my $lower = $t->request('GET', '/admin/api/limits',
    headers => { Authorization => 'basic ' . encode_base64("evil\nforged-$tag:pw", '') });
is($lower->{status}, 400, 'lower case scheme status');

is(join("\n", $t->log_lines('error', qr/forged/)), '', 'forged names not logged');

# Names nginx may log are left to auth_basic: a printable unknown name,
# also a non-ASCII one, gets its 401, and the right user gets through.
for my $user ('nobody', "jos\xc3\xa9") {
    my $r = $t->request('GET', '/admin/api/limits',
        headers => { Authorization => 'Basic ' . encode_base64("$user:pw", '') });
    is($r->{status}, 401, "unknown user $user status");
}
ok(scalar $t->log_lines('error', qr/user "nobody" was not found/),
   'unknown user logged by auth_basic');

my $r = $t->admin_via_nginx('GET', '/limits');
is($r->{status}, 200, 'valid basic auth status');

# A chat location has no auth_basic, and a basic credential there is
# rejected the same way before the module reads it.
$r = $t->request('POST', '/v1/chat/completions', body => '{}',
    headers => { Authorization => 'Basic ' . encode_base64("a\nb:pw", '') });
is($r->{status}, 400, 'chat basic user status');

$t->finish;
