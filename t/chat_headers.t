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

# Straight to the worker's socket: of a repeated header the first counts,
# whatever the case of its name.
my $first_id = '0123456789abcdef0123456789abcdef';
my $second_id = 'fedcba9876543210fedcba9876543210';
my @repeated = (
    "x-chatgate-request-id: $first_id",
    "X-Chatgate-Request-Id: $second_id",
    'x-chatgate-client-addr: 192.0.2.1',
    'X-Chatgate-Client-Addr: 192.0.2.2',
    'authorization: Bearer first-repeated-provider-key',
    'Authorization: Bearer second-repeated-provider-key',
);
$r = $t->worker_request('POST', '/v1/chat/completions', body => $body,
    raw_headers => [ @repeated,
        'X-CHATGATE-MODELS: openai/gpt-4o-mini',
        'X-Chatgate-Models: another-model' ]);
is($r->{status}, 200, 'repeated headers status');
like($r->{headers}{date} // '',
    qr/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/,
    'worker response one date header');
$row = $t->log_row($first_id) // {};
is($row->{client_addr}, '192.0.2.1', 'repeated headers first client addr');
is(scalar $t->query(
    "SELECT 1 FROM chat_logs WHERE request_id = '$second_id'"), 0,
    'repeated headers no row under second id');
is(scalar $t->emulator_requests_with($t->sha256('first-repeated-provider-key')),
    1, 'repeated headers first authorization sent');
is(scalar $t->emulator_requests_with($t->sha256('second-repeated-provider-key')),
    0, 'repeated headers second authorization not sent');

$first_id = '1123456789abcdef0123456789abcdef';
$r = $t->worker_request('POST', '/v1/chat/completions', body => $body,
    raw_headers => [ "X-Chatgate-Request-Id: $first_id",
        'Authorization: Bearer ' . $t->key,
        'x-chatgate-models: another-model',
        'X-Chatgate-Models: openai/gpt-4o-mini' ]);
is($r->{status}, 403, 'repeated models header first counts');
is($r->{json}{error}{code}, 'model_not_allowed', 'repeated models header code');

$t->finish;
