#!/usr/bin/perl

# The worker wipes a chat's key in the request headers once it has read it,
# and the Connection header still decides whether the connection stays open
# after the response. These chats go straight to the worker's socket,
# because nginx does not pass the client's Connection header on.

use strict;
use warnings;

use IO::Socket::UNIX;
use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $socket_path = $t->dir . '/run/worker.sock';
my $body = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "connection header"}]}';

# Sends one chat on $s and reads its response, which has a Content-Length.
# Returns { status, headers (lowercase names), body }.
sub chat_on {
    my ($s, $version, $connection) = @_;

    print $s "POST /v1/chat/completions HTTP/$version\r\n"
        . "Host: chatgate\r\n"
        . 'Authorization: Bearer ' . $t->key . "\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n"
        . ($connection ? "Connection: $connection\r\n" : '')
        . "\r\n"
        . $body;

    my $raw = '';
    my $deadline = time + 10;
    while (time < $deadline && $raw !~ /\r\n\r\n/) {
        sysread($s, $raw, 4096, length $raw) or last;
    }

    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my %headers = map { my ($n, $v) = split /:\s*/, $_, 2; (lc $n, $v) } @lines;
    my $length = $headers{'content-length'} // 0;
    $rest //= '';
    while (time < $deadline && length($rest) < $length) {
        sysread($s, $rest, 4096, length $rest) or last;
    }
    my ($status) = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})};

    return { status => $status // 0, headers => \%headers, body => $rest };
}

# Returns 1 when the worker closed $s within 5 s, 0 when it stayed open.
sub closed_by_worker {
    my ($s) = @_;
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;

    return 0 unless select(my $rout = $rin, undef, undef, 5);
    return sysread($s, my $buf, 1) ? 0 : 1;
}

sub connect_worker {
    my $s = IO::Socket::UNIX->new(Peer => $socket_path)
        or die "connect to $socket_path failed: $!";
    return $s;
}

my $s = connect_worker();
my $r = chat_on($s, '1.1', 'close');
is($r->{status}, 200, 'close status');
is(lc($r->{headers}{connection} // ''), 'close', 'close response header');
ok(closed_by_worker($s), 'close connection closed');
close $s;

$s = connect_worker();
$r = chat_on($s, '1.0', 'keep-alive');
is($r->{status}, 200, 'keep-alive 1.0 status');
is(lc($r->{headers}{connection} // ''), 'keep-alive',
    'keep-alive 1.0 response header');
$r = chat_on($s, '1.0', 'keep-alive');
is($r->{status}, 200, 'keep-alive 1.0 second chat status');
close $s;

$s = connect_worker();
$r = chat_on($s, '1.1', undef);
is($r->{status}, 200, 'default 1.1 status');
$r = chat_on($s, '1.1', undef);
is($r->{status}, 200, 'default 1.1 second chat status');
close $s;

$s = connect_worker();
$r = chat_on($s, '1.0', undef);
is($r->{status}, 200, 'default 1.0 status');
ok(closed_by_worker($s), 'default 1.0 connection closed');
close $s;

$t->finish;
