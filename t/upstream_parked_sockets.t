#!/usr/bin/perl

# Between two calls on a kept provider connection the worker leaves the
# connection's socket in its event loop, so that a call does not cost an
# epoll_ctl() to remove the socket and one to add it back.  This script runs
# the worker against a small provider of its own on 127.0.0.1, reached as
# "localhost", that can close idle connections. curl 7.88 resolves
# "localhost" itself, to 127.0.0.1 and then ::1, so every attempt here
# connects at once; t/upstream_socket_reuse.t makes an IPv4 attempt lose to
# ::1. The script checks that:
# - a connection the provider closes while idle leaves the loop: the worker
#   does not spin on it, and the next chat opens a new connection;
# - a kept connection serves the next chats, and its socket stays in the
#   loop between them: the worker makes no epoll_ctl() call per chat;
# - descriptors of closed provider connections serve new connections from
#   nginx afterwards.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);
use Chatgate::Provider qw(serve read_count wait_count completion_body);
use Chatgate::Test;

my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Proto => 'tcp', Listen => 16, ReuseAddr => 1)
    or die "provider listen failed: $!";
my $port = $listener->sockport;

my $t = Chatgate::Test->new(
    env => { OPENAI_BASE_URL => "http://localhost:$port/v1" });

my $dir = $t->dir;
my $close_flag = "$dir/provider.close-idle";
my $stop_flag = "$dir/provider.stop";
my $accepted_file = "$dir/provider.accepted.v4";
my $closed_file = "$dir/provider.closed";

my $answer = completion_body('parked', 'parked');

$t->in_background('provider', sub {
    serve(listeners => { v4 => $listener }, dir => $dir, answer => $answer,
        close_after => 0.15);
});

sub chat_ok {
    my ($what) = @_;
    my $r = $t->chat(content => $what);
    is($r->{status}, 200, "$what: status");
    is(eval { $r->{json}{choices}[0]{message}{content} }, 'parked',
        "$what: the provider's answer");
}

sub tracer_of {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    local $/;
    my ($tracer) = <$fh> =~ /^TracerPid:\s*(\d+)/m;
    return $tracer // 0;
}

# CPU time of the worker process in clock ticks (utime + stime).
sub worker_ticks {
    open my $fh, '<', '/proc/' . $t->pid('worker') . '/stat' or return undef;
    my $stat = <$fh>;
    my @f = split ' ', substr($stat, rindex($stat, ')') + 2);
    return $f[11] + $f[12];
}

open my $flag, '>', $close_flag or die "open $close_flag failed: $!";
close $flag;

chat_ok('first chat');
is(wait_count($closed_file, 1), 1, 'the provider closed the idle connection');

# A parked socket that the provider closed is readable for good; a worker
# that kept watching it would spin on it.
my $before = worker_ticks();
sleep 1;
my $spent = worker_ticks() - $before;
cmp_ok($spent, '<', 30, "the idle worker does not spin ($spent ticks in 1 s)");

chat_ok('chat after the close');
is(read_count($accepted_file), 2, 'a new connection for the chat after the close');
is(wait_count($closed_file, 2), 2, 'the provider closed that one too');

unlink $close_flag;

# Sends $each chats from each of $clients processes at once; returns how
# many got the provider's answer.
sub parallel_chats {
    my ($label, $clients, $each) = @_;

    for my $c (1 .. $clients) {
        $t->in_background("$label$c", sub {
            my $ok = 0;
            for my $i (1 .. $each) {
                my $r = $t->chat(content => "$label $c $i");
                $ok++ if $r->{status} == 200
                    && eval { $r->{json}{choices}[0]{message}{content} } eq 'parked';
            }
            return { ok => $ok };
        });
    }

    my $ok = 0;
    $ok += ($t->result("$label$_", 60) // {})->{ok} // 0 for 1 .. $clients;
    return $ok;
}

# Four chats at a time, so that calls take kept connections that other
# calls used last, as under load.
my ($clients, $each) = (4, 10);
is(parallel_chats('warm', $clients, 5), $clients * 5, 'warm-up chats answered');
my $opened = read_count($accepted_file);
cmp_ok($opened, '<=', 2 + $clients, "at most $clients more connections ($opened in all)");

# strace counts the worker's epoll_ctl() calls over the next chats, which
# take kept connections: before, two per chat.
my $strace = '/usr/bin/strace';
my $trace = "$dir/epoll_ctl.trace";
my $traced = -x $strace;
if ($traced) {
    $t->spawn('strace', "$dir/strace.stderr", \%ENV, $strace, '-qq',
        '-e', 'trace=epoll_ctl', '-e', 'signal=none', '-o', $trace,
        '-p', $t->pid('worker'));

    my $deadline = time + 10;
    sleep 0.05 while time < $deadline && !tracer_of($t->pid('worker'));
    ok(tracer_of($t->pid('worker')), 'strace attached to the worker');
}

my $chats = $clients * $each;
is(parallel_chats('kept', $clients, $each), $chats, "$chats chats answered");
my $reopened = read_count($accepted_file) - $opened;

SKIP: {
    skip "$strace not found (make deps installs it)", 1 unless $traced;

    $t->stop_process('strace', 'INT');
    open my $fh, '<', $trace or die "open $trace failed: $!";
    my $calls = grep { /^epoll_ctl\(/ } <$fh>;
    close $fh;

    # a provider connection opened during the count adds its socket, and
    # each of nginx's two processes may open more connections to the worker
    cmp_ok($calls, '<=', 2 * $reopened + 2 * $clients,
        "no epoll_ctl() per chat ($calls for $chats chats, "
        . "$reopened new provider connections)");
}

# New connections to the worker take descriptors that closed provider
# connections had.
for my $i (1 .. 4) {
    my $r = $t->worker_request('POST', '/v1/chat/completions',
        headers => { Authorization => 'Bearer ' . $t->key },
        json => { model => 'openai/gpt-4o-mini',
                  messages => [ { role => 'user', content => "direct $i" } ] });
    is($r->{status}, 200, "direct chat $i to the worker");
}

open $flag, '>', $stop_flag or die "open $stop_flag failed: $!";
close $flag;
my $provider = $t->result('provider', 10);
is($provider->{v4}, read_count($accepted_file), 'the provider stopped');

$t->finish;
