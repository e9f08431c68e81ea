#!/usr/bin/perl

# Provider failures and invalid requests: each must come back as an
# OpenAI-style error with the right status, and be logged.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

# Returns 1 when the body is {"error": {"message": ..., "type": ...}}.
sub is_openai_error {
    my ($r) = @_;
    my $error = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;
    return ref $error eq 'HASH' && length($error->{message} // '')
        && length($error->{type} // '');
}

# Provider 500.

my $r = $t->chat(content => '[emu status=500] break please');
is($r->{status}, 502, 'provider 500 status');
ok(is_openai_error($r), 'provider 500 openai error body');
like($r->{headers}{'content-type'} // '', qr{application/json}, 'provider 500 content type');

my $rid = $t->request_id($r->{tag});
my $row = $rid ? $t->log_row($rid) : undef;
ok($row, 'provider 500 log row');
$row //= {};
is($row->{request_id}, $rid, 'provider 500 log request id');
ok(defined $row->{ok} && !$row->{ok}, 'provider 500 log not ok');
is($row->{status}, 502, 'provider 500 log status');
is($row->{provider}, 'openai', 'provider 500 log provider');
like($row->{error_class} // '', qr/\S/, 'provider 500 log error class');
like($row->{error_message} // '', qr/\S/, 'provider 500 log error message');
is($row->{client_addr}, '127.0.0.1', 'provider 500 log client addr');

# Provider 429 with Retry-After.

$r = $t->chat(content => '[emu status=429 retry_after=2] slow down');
is($r->{status}, 429, 'provider 429 status');
is($r->{headers}{'retry-after'}, '2', 'provider 429 retry after');
ok(is_openai_error($r), 'provider 429 openai error body');

# Invalid requests: each is answered by the worker with 400 and never
# reaches the provider.

my $auth = { Authorization => 'Bearer ' . $t->key };
my @invalid = (
    [ 'malformed json',   '{"model": "openai/gpt-4o-mini", "messages": [' ],
    [ 'json not object',  '["model", "messages"]' ],
    [ 'missing model',    '{"messages": [{"role": "user", "content": "no model"}]}' ],
    [ 'missing messages', '{"model": "openai/gpt-4o-mini"}' ],
    [ 'messages not array', '{"model": "openai/gpt-4o-mini", "messages": "hi"}' ],
    [ 'bad utf-8',
      qq{{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "bad \xff\xfe here"}]}} ],
    [ 'overlong utf-8',
      qq{{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "slash \xc0\xaf here"}]}} ],
    [ 'surrogate utf-8 model',
      qq{{"model": "openai/gpt-\xed\xa0\x80", "messages": [{"role": "user", "content": "hi"}]}} ],
    [ 'surrogate escape model',
      '{"model": "openai/gpt-\\udc00", "messages": [{"role": "user", "content": "hi"}]}' ],
    [ 'surrogate escape content',
      '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi \\udfff"}]}' ],
    [ 'high surrogate escape model',
      '{"model": "openai/gpt-\\ud800", "messages": [{"role": "user", "content": "hi"}]}' ],
    [ 'high surrogate before letter',
      '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi \\udbff\\u0041"}]}' ],
    [ 'empty body',       '' ],
    # yajl 2.1.0 accepts a token the text ends inside of after the value
    [ 'unterminated string after object',
      '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]} "x' ],
    [ 'unfinished number after object',
      '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]} -' ],
    [ 'repeated model',
      '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "twice"}], "model": "openai/o1-pro"}' ],
);

my $forwarded = $t->emulator_requests();

for my $case (@invalid) {
    my ($unit, $body) = @$case;
    $r = $t->request('POST', '/v1/chat/completions', headers => $auth, body => $body);
    is($r->{status}, 400, "$unit status");
    ok(is_openai_error($r), "$unit openai error body");
}

is(scalar $t->emulator_requests(), $forwarded, 'invalid requests not forwarded');

$r = $t->request('POST', '/v1/chat/completions', headers => $auth,
                 body => qq{{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "\xe0\x80\xaf"}]}});
like($r->{json}{error}{message}, qr/invalid UTF-8 at byte \d+/, 'overlong utf-8 message names the byte');

$r = $t->request('POST', '/v1/chat/completions', headers => $auth,
                 body => '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]} "tail');
is($r->{json}{error}{message}, 'invalid JSON: parse error: trailing garbage',
   'unterminated string after object message');

$r = $t->request('POST', '/v1/chat/completions', headers => $auth,
                 body => '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]} /* note');
is($r->{status}, 200, 'comment to the end after object accepted');

# The same malformed request over a raw connection, with the bytes exactly
# as written here.

my $body = '{"model": "openai/gpt-4o-mini", "messages": [}';
$r = $t->raw("POST /v1/chat/completions HTTP/1.1\r\n"
    . "Host: localhost\r\n"
    . 'Authorization: Bearer ' . $t->key . "\r\n"
    . "Content-Type: application/json\r\n"
    . 'Content-Length: ' . length($body) . "\r\n"
    . "Connection: close\r\n"
    . "\r\n"
    . $body);
is($r->{status}, 400, 'raw malformed json status');
ok(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH',
    'raw malformed json openai error body');

# Chunked request bodies go through nginx's buffering to the worker.

$body = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "chunked hello"}]}';
$r = $t->raw("POST /v1/chat/completions HTTP/1.1\r\n"
    . "Host: localhost\r\n"
    . 'Authorization: Bearer ' . $t->key . "\r\n"
    . "Content-Type: application/json\r\n"
    . "Transfer-Encoding: chunked\r\n"
    . "Connection: close\r\n"
    . "\r\n"
    . sprintf('%x', length $body) . "\r\n$body\r\n0\r\n\r\n");
is($r->{status}, 200, 'chunked request status');
like($r->{body}, qr/emulator reply to: chunked hello/, 'chunked request reply text');

$t->finish;
