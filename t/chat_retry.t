#!/usr/bin/perl

# Retries of provider calls that fail before any byte reaches the client:
# 429 with Retry-After, 5xx and connect failures, complete and streamed,
# and what the client gets when the retries run out.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Chatgate::Test;

require './t/stream_helpers.pl';

my $closed_port = Chatgate::Test::free_port();
my $t = Chatgate::Test->new(env => {
    OLLAMA_BASE_URL => "http://127.0.0.1:$closed_port",
});

# 429 twice with Retry-After: 1, then 200.

my $r = $t->chat(content => '[emu fail_first=2 status=429 retry_after=1 tag=ra-complete] retry me');
is($r->{status}, 200, 'retry after 429 status');
cmp_ok($r->{elapsed}, '>=', 1.9, 'retry after 429 waited retry-after twice');
cmp_ok($r->{elapsed}, '<', 5, 'retry after 429 not much longer');
is(scalar $t->emulator_requests_with('ra-complete'), 3, 'retry after 429 three requests');

my @lines = $t->log_lines('worker', qr/retrying provider "openai" in \d+ ms, attempt \d of 3: provider answered 429/);
cmp_ok(scalar @lines, '>=', 2, 'retry logged with attempt cause and delay');
like($lines[0] // '', qr/in 1000 ms, attempt 2 of 3/, 'retry log first delay');

# The same, streamed.

$r = stream_chat($t, content => '[emu fail_first=2 status=429 retry_after=1 tag=ra-stream] retry my stream');
is($r->{status}, 200, 'stream retry after 429 status');
is($r->{events}[-1], '[DONE]', 'stream retry after 429 done');
is(stream_content($r), 'emulator reply to: retry my stream', 'stream retry content');
cmp_ok($r->{elapsed}, '>=', 1.9, 'stream retry waited');
is(scalar $t->emulator_requests_with('ra-stream'), 3, 'stream retry three requests');

# 5xx once, then 200; the backoff is short without Retry-After.

$r = $t->chat(content => '[emu fail_first=1 status=503 tag=five-once] one failure');
is($r->{status}, 200, 'retry after 503 status');
cmp_ok($r->{elapsed}, '<', 1.5, 'retry after 503 quick');
is(scalar $t->emulator_requests_with('five-once'), 2, 'retry after 503 two requests');

# 429 on every try: after three, the client gets 429 with Retry-After.

$r = $t->chat(content => '[emu status=429 retry_after=1 tag=always-429] never');
is($r->{status}, 429, 'retries used up status');
is($r->{headers}{'retry-after'}, '1', 'retries used up retry-after');
is(scalar $t->emulator_requests_with('always-429'), 3, 'retries used up three requests');
my $row = stream_log_row($t, $r) // {};
is($row->{status}, 429, 'retries used up log status');

$r = stream_chat($t, content => '[emu status=429 retry_after=1 tag=always-429s] never');
is($r->{status}, 429, 'stream retries used up status');
is($r->{headers}{'retry-after'}, '1', 'stream retries used up retry-after');

# A Retry-After past the deadline is not waited for.

$r = $t->chat(content => '[emu status=429 retry_after=60 tag=ra-long] later');
is($r->{status}, 429, 'long retry-after status');
cmp_ok($r->{elapsed}, '<', 1, 'long retry-after answered at once');
is($r->{headers}{'retry-after'}, '60', 'long retry-after passed on');
is(scalar $t->emulator_requests_with('ra-long'), 1, 'long retry-after one request');

# Connect failures are retried, then answered 502.

$r = $t->chat(model => 'ollama/llama3.2', content => 'nobody listens');
is($r->{status}, 502, 'connect failure status');
is($r->{json}{error}{type}, 'upstream_error', 'connect failure error type');
@lines = $t->log_lines('worker', qr/\] retrying provider "ollama" .*connect failed/);
is(scalar @lines, 2, 'connect failure retried twice');
$row = stream_log_row($t, $r) // {};
is($row->{error_class}, 'upstream_connect', 'connect failure log class');

# A 4xx other than 429 is not retried.

$r = $t->chat(content => '[emu status=400 tag=bad-once] bad request');
is($r->{status}, 400, 'provider 400 status');
is(scalar $t->emulator_requests_with('bad-once'), 1, 'provider 400 not retried');

$t->finish;
