#!/usr/bin/perl

# The worker's log lines quote client-chosen text: model names and the
# scope in an admin path. Besides the C0 bytes, a terminal obeys the C1
# controls, which arrive as UTF-8 (U+009B is a CSI, U+0085 a line break)
# or as raw bytes 0x80 to 0x9F, and log shippers also split lines at
# U+2028 and U+2029. None of them may reach a log line, while printable
# non-ASCII text must pass unchanged.

use strict;
use warnings;

use Encode qw(decode);
use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_LOG_LEVEL => 'debug' });

# Returns 1 when line is valid UTF-8 without C0, DEL, C1, U+2028 and U+2029.
sub valid_log_line {
    my ($line) = @_;
    my $text = eval { decode('UTF-8', $line, Encode::FB_CROAK) };

    return defined $text && $text !~ /[\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]/;
}

# Each case: a name, the model's characters as a JSON escape, and the
# UTF-8 bytes that must not appear in the log.
my @cases = (
    [ 'csi',     '\u009b31m', "\xc2\x9b" ],
    [ 'nel',     '\u0085',    "\xc2\x85" ],
    [ 'line',    '\u2028',    "\xe2\x80\xa8" ],
    [ 'para',    '\u2029',    "\xe2\x80\xa9" ],
);

for my $case (@cases) {
    my ($name, $escape, $bytes) = @$case;
    my $marker = "ctl-$name";
    my $body = qq({"model": "openai/$marker$escape-end", "messages": )
        . qq([{"role": "user", "content": "control characters"}]});

    my $r = $t->request('POST', '/v1/chat/completions', body => $body,
        headers => { Authorization => 'Bearer ' . $t->key });
    is($r->{status}, 200, "$name chat status");

    my @lines = $t->wait_log_lines('worker', qr/\Q$marker\E/);
    ok(@lines, "$name model logged");
    ok(!grep({ index($_, $bytes) >= 0 } @lines), "$name absent from log");
    is(join("\n", grep { !valid_log_line($_) } @lines), '',
        "$name log lines valid");
}

# A raw 0x9B is an 8-bit CSI. The admin path is percent-decoded, so it can
# carry bytes that are not UTF-8.
my $r = $t->admin_via_nginx('PUT', '/limits/ip:raw-%9B31m-%C2%9B32m',
    json => { per_minute => 5 });
is($r->{status}, 400, 'raw csi scope rejected');

my @lines = $t->log_lines('worker', qr/raw-/);
ok(@lines, 'raw csi scope logged');
is(join("\n", grep { !valid_log_line($_) } @lines), '',
    'raw csi absent from log');

# Printable non-ASCII text is logged as sent.
my $text = "ctl-text-\xc3\xa9\xe6\xa8\xa1\xe5\x9e\x8b";
$r = $t->request('POST', '/v1/chat/completions',
    body => qq({"model": "openai/$text", "messages": )
        . qq([{"role": "user", "content": "printable text"}]}),
    headers => { Authorization => 'Bearer ' . $t->key });
is($r->{status}, 200, 'printable text chat status');
ok(scalar $t->wait_log_lines('worker', qr/\Q$text\E/), 'printable text logged unchanged');

$t->finish;
