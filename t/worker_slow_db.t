#!/usr/bin/perl

# A database that does not take writes must not slow chats down: while
# another session holds an ACCESS EXCLUSIVE lock on chat_logs, chats still
# answer at once, and their rows are written once the lock is gone.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use Time::HiRes qw(sleep time);

my $lock_seconds = 4;
my $t = Chatgate::Test->new();

my $r = $t->chat(content => 'before the lock');
is($r->{status}, 200, 'slow db warm up status');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'slow db warm up logged');

$t->psql_background('lock', 'BEGIN; LOCK TABLE chat_logs IN ACCESS EXCLUSIVE MODE; '
    . "SELECT pg_sleep($lock_seconds); COMMIT;");

my $deadline = time + 10;
my $locked = 0;
while (!$locked && time < $deadline) {
    ($locked) = map { $_->{n} } $t->query(
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        . " WHERE c.relname = 'chat_logs' AND l.mode = 'AccessExclusiveLock' AND l.granted");
    sleep 0.05 unless $locked;
}
ok($locked, 'slow db lock taken');

my @tags;
my $started = time;
for my $i (1 .. 5) {
    $r = $t->chat(content => "during the lock $i");
    is($r->{status}, 200, "slow db chat $i status");
    cmp_ok($r->{elapsed}, '<', 1, "slow db chat $i fast");
    push @tags, $r->{tag};
}
cmp_ok(time - $started, '<', $lock_seconds, 'slow db chats done while locked');
ok($t->is_running('lock'), 'slow db lock still held after chats');

is($t->wait_exit('lock', $lock_seconds + 10), 0, 'slow db lock released');

for my $i (1 .. @tags) {
    my $id = $t->request_id($tags[$i - 1]);
    ok($id && $t->log_row($id, 15), "slow db chat $i logged after lock");
}

$t->finish;
