#!/usr/bin/perl

# Request bodies over the limit: nginx's client_max_body_size (1 MiB in
# conf.d) and the worker's CHATGATE_MAX_BODY_SIZE, set lower here so that a
# body can pass nginx and still be too large for the worker.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $worker_limit = 64 * 1024;
my $t = Chatgate::Test->new(env => { CHATGATE_MAX_BODY_SIZE => $worker_limit });

my $auth = { Authorization => 'Bearer ' . $t->key };

# Returns a chat body of about size bytes.
sub chat_body {
    my ($size) = @_;
    my $text = 'word ' x int($size / 5);
    return qq{{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "$text"}]}};
}

my $r = $t->request('POST', '/v1/chat/completions',
    headers => $auth, body => chat_body(1024 * 1024 + 100 * 1024));
is($r->{status}, 413, 'nginx body limit status');
is($r->{json}{error}{code}, 'request_too_large', 'nginx body limit json error');

$r = $t->request('POST', '/v1/chat/completions',
    headers => $auth, body => chat_body($worker_limit + 16 * 1024));
is($r->{status}, 413, 'worker body limit status');
ok(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH',
    'worker body limit json error');

$r = $t->request('POST', '/v1/chat/completions',
    headers => $auth, body => chat_body($worker_limit - 1024));
is($r->{status}, 200, 'body under limit status');

$t->finish;
