#!/usr/bin/perl

# The official openai SDK for Node.js (installed into build/node by
# scripts/test.sh) streaming chats through the gateway.

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
my $out = `node t/node/openai_stream.mjs 2>&1`;
is($? >> 8, 0, 'openai sdk stream exit status') or diag($out);

my %case;
for (split /\n/, $out) {
    my $line = eval { decode_json($_) } or next;
    $case{ $line->{case} } = $line;
}

my $o = $case{openai_stream} // {};
is($o->{text}, 'emulator reply to: stream from the openai sdk', 'sdk openai stream text');
cmp_ok($o->{chunks} // 0, '>', 2, 'sdk openai stream chunks');
is($o->{finish_reason}, 'stop', 'sdk openai stream finish reason');
is($o->{usage}{prompt_tokens}, 5, 'sdk openai stream usage');

my $a = $case{anthropic_stream} // {};
is($a->{text}, 'emulator reply to: anthropic through the sdk', 'sdk anthropic stream text');
ok(!defined $a->{usage}, 'sdk anthropic stream no usage unasked');

my $e = $case{mid_stream_error} // {};
ok($e->{thrown}, 'sdk mid-stream error thrown');
like($e->{message} // '', qr/\S/, 'sdk mid-stream error message');

$t->finish;
