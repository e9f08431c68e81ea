#!/usr/bin/perl

# HTTP/0.9 requests in chatgate's locations. nginx accepts a GET request
# line without a version and reads no headers for it, so the request's
# header list is never initialized. The module must still add its own
# headers without crashing the nginx worker process, and the answer is
# the body alone, as HTTP/0.9 has no status line or headers.

use strict;
use warnings;

use Test::More;

use Chatgate::Test;

my $t = Chatgate::Test->new();

my $r = $t->raw("GET /healthz\r\n");
like($r->{raw}, qr/^\{"status":"ok","database":"up"\}/,
    'http 0.9 healthz answered by the worker');

$r = $t->raw("GET /v1/chat/completions\r\n");
like($r->{raw}, qr/^\{"error":\{/, 'http 0.9 chat get gets a json error');
like($r->{raw}, qr/"type":"invalid_request_error"/,
    'http 0.9 chat get error type');

$r = $t->raw("GET /chat\r\n");
like($r->{raw}, qr/^\{"error":\{/, 'http 0.9 chat page get gets a json error');

my @crashes = $t->log_lines('error', qr/exited on signal/);
ok(!@crashes, 'http 0.9 no nginx worker crash') or diag(join "\n", @crashes);

$r = $t->raw("GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
    . "Connection: close\r\n\r\n");
is($r->{status}, 200, 'http 1.1 healthz after http 0.9 requests');

$t->finish;
