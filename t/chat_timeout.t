#!/usr/bin/perl

# A provider that answers later than CHATGATE_REQUEST_TIMEOUT_MS: the client
# gets a 504 in the OpenAI error format soon after the limit.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_REQUEST_TIMEOUT_MS => 1000 });

my $r = $t->chat(content => '[emu delay_ms=6000] are you there');
is($r->{status}, 504, 'provider timeout status');
ok(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH',
    'provider timeout openai error body');
cmp_ok($r->{elapsed}, '<', 4, 'provider timeout answered soon after limit');

my $rid = $t->request_id($r->{tag});
my $row = $rid ? $t->log_row($rid) : undef;
ok($row, 'provider timeout log row');
$row //= {};
is($row->{status}, 504, 'provider timeout log status');
ok(defined $row->{ok} && !$row->{ok}, 'provider timeout log not ok');
like($row->{error_class} // '', qr/timeout/i, 'provider timeout log error class');

# The worker is still fine afterwards.

$r = $t->chat(content => 'after the timeout');
is($r->{status}, 200, 'chat after timeout status');

$t->finish;
