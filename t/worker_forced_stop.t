#!/usr/bin/perl

# SIGTERM while a client reads none of a large response: the worker stops
# at its deadline (CHATGATE_REQUEST_TIMEOUT_MS plus 5 s) with the response
# unwritten, and exits 0. Under the sanitizers a leak at exit would make the
# exit status non-zero.

use strict;
use warnings;

use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use Chatgate::Test;
use Time::HiRes qw(sleep);

my $t = Chatgate::Test->new(env => { CHATGATE_REQUEST_TIMEOUT_MS => 1000 });

my $body = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", '
    . '"content": "[emu words=100000] a large answer"}]}';

my $s = IO::Socket::UNIX->new(Peer => $t->dir . '/run/worker.sock')
    or die "connect to the worker failed: $!";
setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
$s->autoflush(1);
print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: chatgate\r\n"
    . 'Authorization: Bearer ' . $t->key . "\r\n"
    . "Content-Type: application/json\r\n"
    . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;

# The provider answers at once; the response then waits for the client.
sleep 0.5;
ok($t->is_running('worker'), 'forced stop worker running before signal');
$t->signal('worker', 'TERM');

my $status = $t->wait_exit('worker', 15);
is($status, 0, 'forced stop worker exit status');

close $s;
$t->finish;
