#!/usr/bin/perl

# nginx registers every connection it opens for EPOLLOUT, and a unix stream
# socket signals its writer each time the reader takes data off it.  So
# nginx was woken once per chat for nothing, when the worker read the
# request.  The module stops write events on a connection to the worker once
# an answer comes back.  This script counts, with strace, the EPOLLOUT events
# nginx's processes receive while chats go over kept-alive connections to
# the worker, and checks that chats whose bodies fill the socket, which need
# the write event back, still go through on those connections.

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Chatgate::Test;

my $strace = '/usr/bin/strace';
plan skip_all => "$strace not found (make deps installs it)" unless -x $strace;

my $t = Chatgate::Test->new();

# One client connection for the whole script, so that one nginx process
# serves every chat over one kept-alive connection to the worker.
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);

sub chat {
    my ($content) = @_;
    my $body = encode_json({ model => 'openai/gpt-4o-mini',
        messages => [ { role => 'user', content => $content } ] });

    return $http->request('POST', $t->url('/v1/chat/completions'), {
        headers => { Authorization => 'Bearer ' . $t->key,
                     'Content-Type' => 'application/json' },
        content => $body });
}

# nginx's worker processes: the children of the master.
sub nginx_workers {
    my ($master) = @_;
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $master;
    }
    return @pids;
}

sub traced {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    local $/;
    my ($tracer) = <$fh> =~ /^TracerPid:\s*(\d+)/m;
    return ($tracer // 0) != 0;
}

my @workers = nginx_workers($t->pid('nginx'));
ok(@workers >= 1, 'nginx worker processes found: ' . join(' ', @workers));

# Warm up: the connections are open from here on.
for my $i (1 .. 5) {
    my $r = chat("warm up $i");
    is($r->{status}, 200, "warm-up chat $i");
}

my $trace = $t->dir . '/epoll.trace';
$t->spawn('strace', $t->dir . '/strace.stderr', \%ENV, $strace, '-qq', '-f',
    '-e', 'trace=epoll_wait,epoll_pwait', '-e', 'signal=none',
    '-o', $trace, map { ('-p', $_) } @workers);

my $deadline = time + 10;
sleep 0.05 while time < $deadline && grep { !traced($_) } @workers;
ok(!(grep { !traced($_) } @workers), 'strace attached to every nginx worker');

my $chats = 40;
my $ok = 0;
for my $i (1 .. $chats) {
    my $r = chat("count wakeups $i");
    $ok++ if $r->{status} == 200;
}
is($ok, $chats, "$chats chats answered while traced");

# strace detaches on SIGINT and flushes its output.
$t->stop_process('strace', 'INT');

# A wasted wakeup returns nothing but EPOLLOUT events.  A kept-alive client
# connection reports EPOLLOUT along with EPOLLIN, which costs nothing more.
open my $fh, '<', $trace or die "open $trace failed: $!";
my ($waits, $wasted) = (0, 0);
while (my $line = <$fh>) {
    next unless $line =~ /\[(\{events=.*\})\], \d+, -?\d+\) = \d+$/;
    my @events = $1 =~ /events=([A-Z|]+)/g;
    $waits++;
    $wasted++ unless grep { $_ ne 'EPOLLOUT' } @events;
}
close $fh;

note("epoll_wait returned $waits times, $wasted of them with only EPOLLOUT,"
    . " for $chats chats");
ok($waits >= $chats, "strace saw nginx's events ($waits wakeups)");

# Before the module stopped them, about every chat woke nginx for EPOLLOUT.
cmp_ok($wasted, '<', $chats / 4,
    "nginx is not woken for EPOLLOUT per chat ($wasted for $chats chats)");

# A body larger than the socket's buffer blocks nginx's send, so nginx must
# wait for EPOLLOUT on a connection whose write events the module stopped;
# then a small chat on the same connection.
my $large = 'word ' x int(700 * 1024 / 5);
for my $i (1 .. 3) {
    my $r = chat($large);
    is($r->{status}, 200, "chat with a 700 KiB body $i");
    $r = chat("after the large body $i");
    is($r->{status}, 200, "small chat after the large body $i");
}

$t->finish;
