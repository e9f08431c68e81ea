#!/usr/bin/perl

# The request log queue at its limit: while a lock on chat_logs holds the
# INSERT in flight, more chats arrive than CHATGATE_LOG_QUEUE_MAX rows. The
# oldest queued rows go to the spool file, and once the lock is gone every
# row reaches chat_logs, whether it was queued or spooled. 150 rows span
# several of the queue's 64-row blocks.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use Time::HiRes qw(sleep time);

my $lock_seconds = 10;
my $chats = 200;
my $t = Chatgate::Test->new(env => {
    CHATGATE_LOG_QUEUE_MAX => 150,
    CHATGATE_LOG_BATCH     => 10,
});

my $r = $t->chat(content => 'before the lock');
is($r->{status}, 200, 'queue full warm up status');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'queue full warm up logged');

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
ok($locked, 'queue full lock taken');

my (@tags, @failed);
for my $i (1 .. $chats) {
    $r = $t->chat(content => "during the lock $i");
    push @failed, "$i: $r->{status}" if $r->{status} != 200;
    push @tags, $r->{tag};
}
is_deeply(\@failed, [], 'queue full every chat answered 200');
ok($t->is_running('lock'), 'queue full lock still held after chats');

like($t->read_log('worker'), qr/log queue full \(150 rows\), spooling 10\b/,
    'queue full worker spooled the oldest rows');

is($t->wait_exit('lock', $lock_seconds + 10), 0, 'queue full lock released');

my @ids = map { $t->request_id($_) } @tags;
is(scalar(grep { defined } @ids), $chats, 'queue full request ids found');

my $list = join ',', map { "'$_'" } grep { defined && /^[\w.:-]+$/ } @ids;
my $stored = 0;
$deadline = time + 30;
while (time < $deadline) {
    ($stored) = map { $_->{n} } $t->query(
        "SELECT count(DISTINCT request_id) AS n FROM chat_logs WHERE request_id IN ($list)");
    last if $stored == $chats;
    sleep 0.2;
}
is($stored, $chats, 'queue full every row stored after lock');

$t->finish;
