#!/usr/bin/perl

# The official openai SDK for Node.js (installed into build/node by
# scripts/test.sh) pointed at the gateway with a BYOK key: a completion and
# a provider error, as the SDK sees them.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Chatgate::Test;

my $modules = $ENV{CHATGATE_NODE_MODULES} // '';
plan skip_all => 'node or the openai package is missing: run scripts/test.sh'
    unless -f "$modules/openai/index.mjs" && system('node --version >/dev/null 2>&1') == 0;

my $t = Chatgate::Test->new();

local $ENV{CHATGATE_URL} = $t->url;
local $ENV{CHATGATE_KEY} = $t->key;
my $out = `node t/node/openai_client.mjs 2>&1`;
is($? >> 8, 0, 'openai sdk client exit status') or diag($out);

my %case;
for (split /\n/, $out) {
    my $line = eval { decode_json($_) } or next;
    $case{ $line->{case} } = $line;
}

my $content = 'hello from the openai sdk';
my $reply = "emulator reply to: $content";
my $c = $case{completion} // {};
is($c->{object}, 'chat.completion', 'openai sdk completion object');
is($c->{content}, $reply, 'openai sdk completion reply text');
ok(defined $c->{finish_reason}, 'openai sdk completion finish reason');
is($c->{usage}{prompt_tokens}, $t->word_count($content), 'openai sdk prompt tokens');
is($c->{usage}{completion_tokens}, $t->word_count($reply), 'openai sdk completion tokens');

my $e = $case{provider_error} // {};
ok($e->{thrown}, 'openai sdk provider error thrown');
ok($e->{api_error}, 'openai sdk provider error is APIError');
is($e->{status}, 502, 'openai sdk provider error status');
like($e->{message} // '', qr/\S/, 'openai sdk provider error message');

ok(scalar $t->emulator_requests_with($t->sha256($t->key)), 'openai sdk key forwarded');

$t->finish;
