#!/usr/bin/perl

# The log writer sends rows from its queue with COPY in text format, so
# every field must arrive as the worker saw it: text with tabs, newlines,
# carriage returns and backslashes, NULL for what is unknown, and the
# request's start time to the microsecond.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $before = time;
my $r = $t->chat(content => 'a row sent with copy');
my $after = time;
is($r->{status}, 200, 'log copy chat status');
my $rid = $t->request_id($r->{tag});
my $row = $rid && $t->log_row($rid);
ok($row, 'log copy chat logged');

is($row->{status}, 200, 'log copy status');
ok($row->{ok}, 'log copy ok');
ok(!$row->{stream}, 'log copy not a stream');
is($row->{provider}, 'openai', 'log copy provider');
is($row->{key_id}, 'byok', 'log copy key id');
is($row->{client_addr}, '127.0.0.1', 'log copy client addr');
like($row->{prompt_tokens} // '', qr/^\d+$/, 'log copy prompt tokens');
like($row->{total_tokens} // '', qr/^\d+$/, 'log copy total tokens');
is($row->{error_class}, undef, 'log copy error class null');
is($row->{error_message}, undef, 'log copy error message null');
is($row->{ttft_ms}, undef, 'log copy ttft null');
is($row->{chunks}, undef, 'log copy chunks null');

my ($when) = $t->query("SELECT extract(epoch FROM created_at)::float8 AS s,"
    . " to_char(created_at AT TIME ZONE 'UTC', 'US') AS us"
    . " FROM chat_logs WHERE request_id = '$rid'");
cmp_ok($when->{s}, '>=', $before - 1, 'log copy created_at not early');
cmp_ok($when->{s}, '<=', $after + 1, 'log copy created_at not late');

# A model name with every byte that COPY's text format escapes. The
# provider answers 500, so the error fields are filled as well.
my $model = "gpt\tx\ny\rz \\ \\N \"q\" {a},b";
$r = $t->chat(model => $model, content => '[emu status=500] a model to escape');
is($r->{status}, 502, 'log copy odd model status');
$rid = $t->request_id($r->{tag});
$row = $rid && $t->log_row($rid);
ok($row, 'log copy odd model logged');
is($row->{model}, $model, 'log copy odd model stored as sent');
is($row->{status}, 502, 'log copy odd model status stored');
ok(!$row->{ok}, 'log copy odd model not ok');
like($row->{error_class} // '', qr/\S/, 'log copy odd model error class');
like($row->{error_message} // '', qr/\S/, 'log copy odd model error message');

# A COPY that fails sends its rows to the spool, and the replay by INSERT
# would store them all the same: so neither may have happened.
is(scalar $t->logs_containing('log rows failed', 'worker'), 0,
   'log copy no failed batch');
is(scalar $t->logs_containing('spooling log rows', 'worker'), 0,
   'log copy nothing spooled');
ok(!-s $t->dir . '/spool', 'log copy spool empty');

$t->finish();
