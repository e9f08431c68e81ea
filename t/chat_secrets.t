#!/usr/bin/perl

# A client's own provider key (BYOK) is forwarded to the provider and
# appears nowhere else: no nginx log, no worker log line, no chat_logs
# column, not even when the chat fails.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $key = $t->key;

my $r = $t->chat(content => 'keep my key secret');
is($r->{status}, 200, 'byok chat status');
my $ok_rid = $t->request_id($r->{tag});

$r = $t->chat(content => '[emu status=401] provider rejects the key');
cmp_ok($r->{status}, '>=', 400, 'byok rejected chat status');
my $rejected_rid = $t->request_id($r->{tag});

$r = $t->chat(content => '[emu status=500] provider fails');
is($r->{status}, 502, 'byok failed chat status');
my $failed_rid = $t->request_id($r->{tag});

for my $rid ($ok_rid, $rejected_rid, $failed_rid) {
    ok($rid && $t->log_row($rid), 'byok chat logged');
}

my @sent = $t->emulator_requests_with($t->sha256($key));
cmp_ok(scalar @sent, '>=', 3, 'byok credential forwarded to provider');

is(scalar $t->query(
    "SELECT 1 FROM chat_logs c WHERE strpos(row_to_json(c)::text, '$key') > 0"), 0,
    'byok key in no chat_logs column');

ok(!$t->query("SELECT 1 FROM chat_logs c WHERE strpos(row_to_json(c)::text, 'sk-test-') > 0"),
    'byok key prefix in no chat_logs column');

# Logs are complete once every process has stopped.

$t->stop;

my @logs = qw(error access worker migrate nginx.stderr);
is(join(', ', $t->logs_containing($key, @logs)), '', 'byok key in no log');
is(join(', ', $t->logs_containing(substr($key, 8), @logs)), '',
    'byok key body in no log');

$t->finish;
