#!/usr/bin/perl

# Client-sent copies of the module's internal X-Chatgate-* headers must not
# reach the worker: the chat_logs row carries nginx's request id and the
# real client address, whatever the client claimed.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $spoofed_id = 'spoofed-request-id-0001';
my $r = $t->chat(
    content => 'spoofed headers chat',
    headers => {
        'X-Chatgate-Request-Id'  => $spoofed_id,
        'X-Chatgate-Client-Addr' => '203.0.113.9',
        'X-Chatgate-Key-Id'      => '00000000-0000-4000-8000-000000000001',
    });
is($r->{status}, 200, 'spoofed headers status');

my $rid = $t->request_id($r->{tag});
ok($rid, 'spoofed headers nginx request id');
isnt($rid, $spoofed_id, 'spoofed headers request id is not the client one');

my $row = $rid ? $t->log_row($rid) : undef;
ok($row, 'spoofed headers log row under nginx id');
$row //= {};
is($row->{client_addr}, '127.0.0.1', 'spoofed headers real client addr');
is($row->{key_id}, 'byok', 'spoofed headers key id byok');

is(scalar $t->query(
    "SELECT 1 FROM chat_logs WHERE request_id = '$spoofed_id'"
    . " OR client_addr::text LIKE '203.0.113.9%'"), 0,
    'spoofed headers no row with spoofed values');

# The same with the headers spelled in another case, twice over.

my $body = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "raw spoof"}]}';
$r = $t->raw("POST /v1/chat/completions HTTP/1.1\r\n"
    . "Host: localhost\r\n"
    . 'Authorization: Bearer ' . $t->key . "\r\n"
    . "x-chatgate-client-addr: 198.51.100.7\r\n"
    . "X-CHATGATE-CLIENT-ADDR: 198.51.100.8\r\n"
    . "X-Test-Tag: raw-spoof\r\n"
    . "Content-Type: application/json\r\n"
    . 'Content-Length: ' . length($body) . "\r\n"
    . "Connection: close\r\n"
    . "\r\n"
    . $body);
is($r->{status}, 200, 'spoofed headers any case status');
$rid = $t->request_id('raw-spoof');
$row = $rid ? $t->log_row($rid) : undef;
ok($row, 'spoofed headers any case log row');
is($row->{client_addr}, '127.0.0.1', 'spoofed headers any case real client addr');

$t->finish;
