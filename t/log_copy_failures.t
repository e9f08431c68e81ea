#!/usr/bin/perl

# A COPY that fails sends its batch to the spool, whose replay inserts with
# ON CONFLICT DO NOTHING. Every answered chat must then be stored exactly
# once, or set aside in the .rejected file with a log line: here the COPY
# loses its connection while it waits for a lock, and a COPY breaks a CHECK
# constraint.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $spool = $t->dir . '/spool';

my $r = $t->chat(content => 'before the lock');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'copy failures warm up logged');

# The COPY waits for the lock, and its backend is terminated meanwhile.
$t->psql_background('lock', 'BEGIN; LOCK TABLE chat_logs IN ACCESS EXCLUSIVE MODE; '
    . 'SELECT pg_sleep(3); COMMIT;');
ok($t->wait_for(sub {
    my ($n) = map { $_->{n} } $t->query("SELECT count(*) AS n FROM pg_locks l"
        . " JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'chat_logs'"
        . " AND l.mode = 'AccessExclusiveLock' AND l.granted");
    $n;
}, 10), 'copy failures lock taken');

my @during;
for my $i (1 .. 5) {
    $r = $t->chat(content => "during the lock $i");
    is($r->{status}, 200, "copy failures chat $i status");
    push @during, $r->{tag};
}

ok($t->wait_for(sub {
    my ($n) = map { $_->{n} } $t->query("SELECT count(*) AS n"
        . " FROM pg_stat_activity WHERE query LIKE 'COPY chat_logs%'"
        . " AND wait_event_type = 'Lock'");
    $n;
}, 10), 'copy failures copy waits for the lock');
$t->execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    . " WHERE query LIKE 'COPY chat_logs%' AND pid <> pg_backend_pid()");
is($t->wait_exit('lock', 15), 0, 'copy failures lock released');

for my $i (1 .. @during) {
    my $id = $t->request_id($during[$i - 1]);
    ok($id && $t->log_row($id, 20), "copy failures chat $i logged");
    is($id && $t->log_row_count($id), 1, "copy failures chat $i stored once");
}
ok(scalar $t->logs_containing('log rows failed', 'worker'),
   'copy failures lost copy logged');
ok($t->wait_for(sub { -z $spool }, 15), 'copy failures spool emptied');

# A CHECK constraint that the next batch breaks: the COPY is rejected,
# and so is the replay, which moves the rows to spool.rejected.
$t->execute("ALTER TABLE chat_logs ADD CONSTRAINT chat_logs_test_model"
    . " CHECK (model <> 'reject-me')");
$r = $t->chat(model => 'openai/reject-me', content => 'a rejected row');
is($r->{status}, 200, 'copy failures rejected chat status');
my $rejected_id = $t->request_id($r->{tag});

ok($t->wait_for(sub { -s "$spool.rejected" }, 15),
   'copy failures rejected file written');
ok($t->wait_for(sub {
    scalar $t->logs_containing('rejected by the database', 'worker') }, 5),
   'copy failures rejection logged');
is($t->log_row_count($rejected_id), 0, 'copy failures rejected row not stored');
open my $fh, '<', "$spool.rejected" or die "open $spool.rejected failed: $!";
my $rejected = do { local $/; <$fh> };
like($rejected, qr/\Q$rejected_id\E/, 'copy failures rejected row set aside');

# The writer goes on with the next batches.
$t->execute('ALTER TABLE chat_logs DROP CONSTRAINT chat_logs_test_model');
$r = $t->chat(content => 'after the rejection');
$rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid, 15), 'copy failures chat after logged');
ok($t->is_running('worker'), 'copy failures worker running');

$t->finish();
