#!/usr/bin/perl

# Provider sockets that curl closes without CURLOPT_CLOSESOCKETFUNCTION
# must leave the worker's event loop before their descriptor number serves
# another socket, or epoll never reports that socket. curl 7.88 closes two
# kinds that way: a connection attempt that lost the happy-eyeballs race
# (cf_socket_close() in lib/cf-socket.c), and the socketpair of its threaded
# resolver (destroy_async_data() in lib/asyn-thread.c). This script makes
# both happen while kept connections stay parked in the loop, then checks
# that chats and new connections from nginx keep working without a stall:
# - "localhost" gives 127.0.0.1 and then ::1 (curl resolves it itself). The
#   provider serves ::1, while 127.0.0.1 on the same port has a full accept
#   queue, so curl's IPv4 attempt hangs until ::1 wins after curl's 200 ms
#   happy-eyeballs delay and the IPv4 socket is closed as the loser.
# - "vm" or another name from /etc/hosts goes through the threaded resolver.
#   Pointed at a port where nothing listens, the call fails after the
#   resolver closed its socketpair, and the next connections from nginx take
#   the socketpair's descriptor numbers.
# NOTE: a registration left behind shows only when the next socket with its
# number waits for the same events. Otherwise libevent's MOD of that number
# fails with ENOENT and is retried as an ADD. A worker that parked every
# socket stalled here in one run of three, so a pass is no proof.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use IO::Socket::UNIX;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_REUSEADDR inet_aton
    pack_sockaddr_in);
use Test::More;
use Time::HiRes qw(sleep time);
use Chatgate::Provider qw(serve read_count wait_count completion_body);
use Chatgate::Test;

# A name that only /etc/hosts resolves, to 127.0.0.1.
my $hosts_name;
if (open my $hosts, '<', '/etc/hosts') {
    while (my $line = <$hosts>) {
        next unless $line =~ /^127\.0\.0\.1\s+(.*)$/;
        ($hosts_name) = grep { $_ ne 'localhost' && !/\.localhost$/ } split ' ', $1;
        last if defined $hosts_name;
    }
    close $hosts;
}
plan skip_all => 'no name for 127.0.0.1 other than localhost in /etc/hosts'
    unless defined $hosts_name;

my $v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
    Listen => 16, ReuseAddr => 1)
    or plan skip_all => "cannot listen on ::1: $@";
my $port = $v6->sockport;

# 127.0.0.1 on the same port, with a backlog of 0: the kernel queues one
# connection, which is never accepted, and drops SYNs after it.
socket(my $v4_full, PF_INET, SOCK_STREAM, 0) or die "socket failed: $!";
setsockopt($v4_full, SOL_SOCKET, SO_REUSEADDR, 1) or die "setsockopt failed: $!";
bind($v4_full, pack_sockaddr_in($port, inet_aton('127.0.0.1')))
    or die "bind 127.0.0.1:$port failed: $!";
listen($v4_full, 0) or die "listen failed: $!";

my @fillers;
for (1 .. 4) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 0.5)
        or last;
    push @fillers, $s;
}
my $hangs = !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 0.5);
ok($hangs, 'a connection to 127.0.0.1 on the provider port hangs ('
    . scalar(@fillers) . ' queued)');

my $v4 = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 16, ReuseAddr => 1)
    or die "provider listen on 127.0.0.1 failed: $!";
my $v4_port = $v4->sockport;

my $refused_port = Chatgate::Test::free_port();

my $t = Chatgate::Test->new(env => {
    OPENAI_BASE_URL => "http://localhost:$port/v1",
    OPENROUTER_BASE_URL => "http://$hosts_name:$v4_port/api/v1",
    ANTHROPIC_BASE_URL => "http://$hosts_name:$refused_port/v1",
    CHATGATE_RETRY_ATTEMPTS => 1,
    CHATGATE_CONNECT_TIMEOUT_MS => 10000,
    CHATGATE_REQUEST_TIMEOUT_MS => 20000,
});

my $dir = $t->dir;
my $close_flag = "$dir/provider.close-idle";
my $stop_flag = "$dir/provider.stop";

my $answer = completion_body('reuse', 'reused');

# The provider on ::1 and on the second 127.0.0.1 port: answers every chat
# with keep-alive and, while $close_flag exists, closes a connection idle for
# 100 ms. It counts accepted connections per listener and closed ones.
$t->in_background('provider', sub {
    serve(listeners => { v6 => $v6, v4 => $v4 }, dir => $dir, answer => $answer,
        close_after => 0.1);
});

# SYNs that the kernel dropped for a full accept queue, on any socket.
sub listen_overflows {
    open my $fh, '<', '/proc/net/netstat' or return 0;
    my @names;
    while (my $line = <$fh>) {
        next unless $line =~ s/^TcpExt:\s+//;
        if (!@names) {
            @names = split ' ', $line;
            next;
        }
        my %value;
        @value{@names} = split ' ', $line;
        return $value{ListenOverflows} // 0;
    }
    return 0;
}

# CPU time of the worker process in clock ticks (utime + stime).
sub worker_ticks {
    open my $fh, '<', '/proc/' . $t->pid('worker') . '/stat' or return 0;
    my $stat = <$fh>;
    my @f = split ' ', substr($stat, rindex($stat, ')') + 2);
    return $f[11] + $f[12];
}

# A chat must not wait for curl's connect timeout: the happy-eyeballs delay
# is 200 ms.
sub chat_ok {
    my ($what, $model) = @_;
    my $r = $t->chat(content => $what, model => $model);
    is($r->{status}, 200, "$what: status");
    is(eval { $r->{json}{choices}[0]{message}{content} }, 'reused',
        "$what: the provider's answer");
    cmp_ok($r->{elapsed}, '<', 10, "$what: answered within 10 s");
}

sub direct_chats {
    my ($what, $n) = @_;
    for my $i (1 .. $n) {
        my $r = $t->worker_request('POST', '/v1/chat/completions',
            headers => { Authorization => 'Bearer ' . $t->key },
            json => { model => 'openai/gpt-4o-mini',
                      messages => [ { role => 'user', content => "$what $i" } ] });
        is($r->{status}, 200, "$what: direct chat $i to the worker");
    }
}

# Opens $n connections to the worker's socket at once, so that they take the
# lowest free descriptor numbers in the worker, then sends GET /healthz on
# each. Returns the status of each, 0 for no answer within 5 s.
sub health_checks_at_once {
    my ($n) = @_;
    my @sockets;

    for (1 .. $n) {
        my $s = IO::Socket::UNIX->new(Peer => $dir . '/run/worker.sock')
            or die "connect to the worker's socket failed: $!";
        push @sockets, $s;
    }
    sleep 0.2;

    my @statuses;
    for my $s (@sockets) {
        syswrite($s, "GET /healthz HTTP/1.0\r\nHost: chatgate\r\n\r\n");
        my $select = IO::Select->new($s);
        my ($raw, $deadline) = ('', time + 5);
        while (time < $deadline && $select->can_read($deadline - time)) {
            my $got = sysread($s, $raw, 4096, length $raw);
            last unless $got;
        }
        push @statuses, $raw =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 0;
        close $s;
    }
    return @statuses;
}

my $openai = 'openai/gpt-4o-mini';
my $overflows = listen_overflows();
my $openrouter = 'openrouter/openai/gpt-4o-mini';

chat_ok('first chat over ::1', $openai);
is(read_count("$dir/provider.accepted.v6"), 1, 'the first chat connected to ::1');
chat_ok('first chat through the resolver', $openrouter);
is(read_count("$dir/provider.accepted.v4"), 1, 'the resolver chat connected');
chat_ok('chat on the kept ::1 connection', $openai);
chat_ok('chat on the kept resolver connection', $openrouter);

# Each round: the provider closes both idle connections, nginx opens new
# connections to the worker, which take the freed descriptors, and the next
# chats open new provider connections, each with a losing IPv4 attempt.
open my $flag, '>', $close_flag or die "open $close_flag failed: $!";
close $flag;

my $closed = 0;
for my $round (1 .. 4) {
    $closed += 2;
    is(wait_count("$dir/provider.closed", $closed), $closed,
        "round $round: the provider closed the idle connections");

    my $before = worker_ticks();
    sleep 0.5;
    my $spent = worker_ticks() - $before;
    cmp_ok($spent, '<', 20, "round $round: the idle worker does not spin ($spent ticks)");

    direct_chats("round $round", 3);

    chat_ok("round $round chat over ::1", $openai);
    chat_ok("round $round chat through the resolver", $openrouter);
    chat_ok("round $round second chat over ::1", $openai);
}

unlink $close_flag;

# Several chats at once open several connections, each racing IPv4 and ::1.
for my $c (1 .. 4) {
    $t->in_background("parallel$c", sub {
        my $ok = 0;
        for my $i (1 .. 5) {
            my $r = $t->chat(content => "parallel $c $i",
                model => $i % 2 ? $openai : $openrouter);
            $ok++ if $r->{status} == 200 && $r->{elapsed} < 10;
        }
        return { ok => $ok };
    });
}
my $ok = 0;
$ok += ($t->result("parallel$_", 60) // {})->{ok} // 0 for 1 .. 4;
is($ok, 20, 'parallel chats answered within 3 s each');

direct_chats('after the parallel chats', 4);

# The threaded resolver runs once per name and port, and the connection
# attempt after it is refused, so the resolver's descriptor numbers are free
# when nginx connects again.
for my $i (1 .. 3) {
    my $r = $t->chat(content => "refused $i", model => 'anthropic/claude-3-5-haiku');
    isnt($r->{status}, 200, "refused provider chat $i: an error");
    cmp_ok($r->{elapsed}, '<', 10, "refused provider chat $i: answered within 10 s");

    my @statuses = health_checks_at_once(8);
    is(scalar(grep { $_ == 200 } @statuses), 8,
        "refused provider chat $i: health checks after it answered (@statuses)");
}
chat_ok('last chat over ::1', $openai);

open $flag, '>', $stop_flag or die "open $stop_flag failed: $!";
close $flag;
my $provider = $t->result('provider', 10);
cmp_ok($provider->{v6} // 0, '>=', 5,
    'the provider accepted a ::1 connection per round');

# Each ::1 connection followed an IPv4 attempt whose SYN the full queue
# dropped, so curl closed an attempt that lost the race each time.
my $dropped = listen_overflows() - $overflows;
cmp_ok($dropped, '>=', $provider->{v6} // 0,
    "IPv4 attempts hung before each ::1 connection ($dropped SYNs dropped)");

$t->finish;
