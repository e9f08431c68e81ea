#!/usr/bin/perl

# Connections to the provider stay open between bursts of chats. curl's own
# default keeps four connections per call in flight when a call ends, so
# after a lull it would close the connections that the next burst needs;
# CHATGATE_PROVIDER_CONNECTIONS sets the cap instead.

use strict;
use warnings;

use IO::Socket::UNIX;
use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $burst = 24;
my $t = Chatgate::Test->new();
my $socket_path = $t->dir . '/run/worker.sock';

# Sends $n chats at once straight to the worker, each held 300 ms by the
# emulator so that all of them are in flight together, and returns their
# statuses.
sub chats_at_once {
    my ($n, $delay_ms) = @_;
    my @sockets;

    for my $i (1 .. $n) {
        my $body = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", '
            . "\"content\": \"[emu delay_ms=$delay_ms] reuse $i\"}]}";
        my $s = IO::Socket::UNIX->new(Peer => $socket_path)
            or die "connect to $socket_path failed: $!";
        print $s "POST /v1/chat/completions HTTP/1.0\r\n"
            . 'Authorization: Bearer ' . $t->key . "\r\n"
            . "Content-Type: application/json\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        push @sockets, $s;
    }

    my @status;
    for my $s (@sockets) {
        local $/;
        my $raw = <$s> // '';
        push @status, $raw =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 0;
        close $s;
    }
    return @status;
}

# The local ports of the established TCP connections to the emulator.
sub provider_connections {
    my $port = sprintf('%04X', $t->emulator_port);
    my @ports;

    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            next unless @f > 3 && $f[3] eq '01';
            my ($local, $remote) = ($f[1], $f[2]);
            next unless $remote =~ /:$port$/;
            push @ports, hex((split /:/, $local)[1]);
        }
        close $fh;
    }
    return sort { $a <=> $b } @ports;
}

my @status = chats_at_once($burst, 300);
is(scalar(grep { $_ == 200 } @status), $burst, 'first burst all answered');

my @after_burst = provider_connections();
cmp_ok(scalar @after_burst, '>=', $burst, 'first burst opened a connection per chat');

# One chat at a time: each ends with one call in flight, where curl's
# default would close the oldest idle connection.
for my $i (1 .. 10) {
    my $r = $t->chat(content => "sequential $i");
    is($r->{status}, 200, "sequential chat $i");
}

my @after_lull = provider_connections();
is(scalar @after_lull, scalar @after_burst, 'lull closed no provider connection');

@status = chats_at_once($burst, 300);
is(scalar(grep { $_ == 200 } @status), $burst, 'second burst all answered');

my @after_second = provider_connections();
is("@after_second", "@after_lull", 'second burst reused the same connections');

$t->finish;
