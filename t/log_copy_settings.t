#!/usr/bin/perl

# The log writer's rows must not depend on the database's session defaults.
# An operator may set the database's TimeZone or client_encoding to suit
# psql users, but the worker sends UTF-8 text and UTC timestamps, so its
# rows must still arrive as sent.

use strict;
use warnings;
use utf8;

use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

# psql, which reads the rows back here, talks UTF-8 whatever the database says.
$ENV{PGCLIENTENCODING} = 'UTF8';

my $t = Chatgate::Test->new();
my $db = $t->db;

is($t->stop_process('worker', 'TERM'), 0, 'log settings worker stopped');
$t->execute(qq{ALTER DATABASE "$db" SET timezone = 'Pacific/Chatham'});
$t->execute(qq{ALTER DATABASE "$db" SET client_encoding = 'LATIN1'});
$t->start_worker();

my $model = "gpt-\x{e9}\x{20ac}\x{1f600}";
my $before = time;
my $r = $t->chat(model => "openai/$model", content => 'a row under odd settings');
my $after = time;
is($r->{status}, 200, 'log settings chat status');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'log settings chat logged');

# Read back as UTF-8 hex and UTC epoch, whatever psql's session shows.
my ($row) = $t->query("SELECT encode(convert_to(model, 'UTF8'), 'hex') AS hex,"
    . " extract(epoch FROM created_at)::float8 AS s"
    . " FROM chat_logs WHERE request_id = '$rid'");
my $want = unpack('H*', do { my $m = $model; utf8::encode($m); $m });
is($row->{hex}, $want, 'log settings model stored as UTF-8');
cmp_ok($row->{s}, '>=', $before - 1, 'log settings created_at not early');
cmp_ok($row->{s}, '<=', $after + 1, 'log settings created_at not late');

is(scalar $t->logs_containing('log rows failed', 'worker'), 0,
   'log settings no failed batch');
is(scalar $t->logs_containing('spooling log rows', 'worker'), 0,
   'log settings nothing spooled');

$t->finish();
