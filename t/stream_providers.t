#!/usr/bin/perl

# Streamed chats through nginx for each provider kind: OpenAI chunk events
# and [DONE], framing quirks upstream, UTF-8 split across reads, usage and
# the request log row, and the chat page's streamed form.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Chatgate::Test;

require './t/stream_helpers.pl';

my $t = Chatgate::Test->new();

my %models = (
    openai     => 'openai/gpt-4o-mini',
    openrouter => 'openrouter/meta-llama/llama-3.1-8b-instruct',
    anthropic  => 'anthropic/claude-3-5-haiku',
    ollama     => 'ollama/llama3.2',
);

for my $provider (sort keys %models) {
    my $content = "stream through $provider please";
    my $r = stream_chat($t, model => $models{$provider}, content => $content);

    is($r->{status}, 200, "$provider stream status");
    like($r->{headers}{'content-type'} // '', qr{^text/event-stream},
        "$provider stream content type");
    ok($r->{complete}, "$provider stream complete");
    is($r->{events}[-1], '[DONE]', "$provider stream done last");

    my @json = stream_json($r);
    is(scalar @json, @{ $r->{events} } - 1, "$provider stream events parse");
    is((grep { ($_->{object} // '') ne 'chat.completion.chunk' } @json), 0,
        "$provider stream chunk objects");
    is(stream_content($r), "emulator reply to: $content",
        "$provider stream content joined");
    ok(!(grep { $_->{usage} } @json), "$provider stream no usage unasked");

    my $row = stream_log_row($t, $r) // {};
    ok($row->{ok} && $row->{stream}, "$provider stream log ok");
    is($row->{status}, 200, "$provider stream log status");
    cmp_ok($row->{chunks} // 0, '>', 0, "$provider stream log chunks");
    ok(defined $row->{ttft_ms}, "$provider stream log ttft");
    ok(defined $row->{stream_ms}, "$provider stream log stream ms");
    is($row->{prompt_tokens}, $t->word_count($content),
        "$provider stream log prompt tokens");
    is($row->{completion_tokens}, $t->word_count("emulator reply to: $content"),
        "$provider stream log completion tokens");
}

# Framing: comment lines, CRLF line ends and one byte per read upstream.

for my $case ([ 'comments', 'comments=1' ], [ 'crlf', 'crlf=1' ],
    [ 'split bytes', 'split_bytes=1' ],
    [ 'all quirks', 'comments=1 crlf=1 split_bytes=1' ])
{
    my ($name, $knobs) = @$case;
    for my $model ($models{openai}, $models{anthropic}, $models{ollama}) {
        my $r = stream_chat($t, model => $model,
            content => "[emu $knobs chunks=5] framing check");
        my ($provider) = $model =~ m{^(\w+)/};
        is(stream_content($r), 'emulator reply to: framing check',
            "$name $provider content intact");
        is($r->{events}[-1], '[DONE]', "$name $provider done last");
    }
}

# UTF-8: multi-byte text cut into one-byte reads upstream.

my $text = "h\x{e9}llo w\x{f6}rld \x{65e5}\x{672c}\x{8a9e} \x{2713} \x{1f600}";
for my $model ($models{openai}, $models{anthropic}, $models{ollama}) {
    my $r = stream_chat($t, model => $model,
        content => "[emu split_bytes=1] $text");
    my ($provider) = $model =~ m{^(\w+)/};
    is(stream_content($r), "emulator reply to: $text",
        "utf-8 $provider split intact");
}

# Usage: OpenAI sends it in the final chunk only, when the client asks.

my $r = stream_chat($t, content => 'count my tokens',
    extra => { stream_options => { include_usage => JSON::PP::true } });
my @json = stream_json($r);
my @with_usage = grep { $_->{usage} } @json;
is(scalar @with_usage, 1, 'usage one chunk');
is($with_usage[0], $json[-1], 'usage in final chunk');
is_deeply($json[-1]{choices}, [], 'usage chunk no choices');
is($json[-1]{usage}{prompt_tokens}, 3, 'usage prompt tokens');

# usage=final: the emulator sends usage without being asked; the client did
# not ask, so only the log has it.

$r = stream_chat($t, content => '[emu usage=final] unasked usage');
ok(!(grep { $_->{usage} } stream_json($r)), 'usage final not passed on');
my $row = stream_log_row($t, $r) // {};
is($row->{prompt_tokens}, $t->word_count('[emu usage=final] unasked usage'),
    'usage final logged');

# Anthropic: input tokens from message_start, output from message_delta.

$r = stream_chat($t, model => $models{anthropic}, content => 'merge my usage now',
    extra => { stream_options => { include_usage => JSON::PP::true } });
@json = stream_json($r);
is($json[-1]{usage}{prompt_tokens}, 4, 'anthropic usage prompt tokens');
is($json[-1]{usage}{completion_tokens}, 7, 'anthropic usage completion tokens');
is($json[-1]{usage}{total_tokens}, 11, 'anthropic usage total tokens');
$row = stream_log_row($t, $r) // {};
is($row->{total_tokens}, 11, 'anthropic usage logged total');

# No usage at all: NULL in the log, not 0.

$r = stream_chat($t, content => '[emu usage=none] no usage here');
is($r->{events}[-1], '[DONE]', 'no usage stream done');
$row = stream_log_row($t, $r) // {};
ok($row->{ok}, 'no usage log ok');
ok(!defined $row->{prompt_tokens}, 'no usage prompt tokens null');
ok(!defined $row->{completion_tokens}, 'no usage completion tokens null');
ok(!defined $row->{total_tokens}, 'no usage total tokens null');

# The chat page's form, streamed.

$r = stream_chat($t, path => '/chat', body => {
    provider => 'anthropic', model => 'claude-3-5-haiku', stream => JSON::PP::true,
    messages => [ { role => 'user', content => 'form stream' } ] });
is($r->{status}, 200, 'form stream status');
@json = stream_json($r);
my $joined = join '', map { $_->{delta} // '' } @json;
is($joined, 'emulator reply to: form stream', 'form stream deltas');
ok($json[-1]{done}, 'form stream done last');
is($json[-1]{usage}{prompt_tokens}, 2, 'form stream usage');
like($json[-1]{latency_ms} // '', qr/^\d+$/, 'form stream latency');

# Chunks pass through nginx one by one, not in a batch at the end.

$r = stream_chat($t, content => '[emu chunks=5 chunk_delay_ms=200] pace me');
my @times = @{ $r->{times} };
cmp_ok($times[-1] - $times[0], '>', 0.6, 'paced stream spread out');
my ($first_content) = grep { ($r->{events}[$_] // '') =~ /"content":"[^"]/ } 0 .. $#times;
cmp_ok($times[$first_content] // 99, '<', 0.5, 'paced stream first chunk early');

# Pass-through: chunks that already name the requested model go on as the
# provider wrote them. The emulator escapes a backspace as "\u0008", where
# a rewrite by yajl_gen writes "\b", so the escape tells the two apart.

my $control = "back\x{8}space";
my $pass_content = "[emu chunks=3] $control";

# The same request the worker makes, straight to the emulator: the worker
# adds include_usage when the client sets no stream_options.
my $direct = HTTP::Tiny->new(timeout => 10)->post(
    'http://127.0.0.1:' . $t->emulator_port . '/v1/chat/completions', {
        headers => { 'Content-Type' => 'application/json',
                     'Authorization' => 'Bearer pass-through-test' },
        content => JSON::PP->new->utf8->encode({
            model          => 'gpt-4o-mini',
            stream         => JSON::PP::true,
            stream_options => { include_usage => JSON::PP::true },
            messages       => [ { role => 'user', content => $pass_content } ],
        }),
    });
is($direct->{status}, 200, 'pass-through direct status');

# Chunk events with choices, with the per-call id and time made equal.
sub chunk_events {
    my @events = grep { /"choices":\[\{/ } @_;
    s/"id":"[^"]*"/"id":"-"/, s/"created":\d+/"created":0/ for @events;
    return @events;
}

my @want = chunk_events(map { /^data: (.*)$/s ? $1 : () }
    split /\n\n/, $direct->{content} // '');
$r = stream_chat($t, model => 'gpt-4o-mini', content => $pass_content);
my @got = chunk_events(@{ $r->{events} });

cmp_ok(scalar @want, '>=', 4, 'pass-through direct chunks');
is_deeply(\@got, \@want, 'pass-through chunks byte for byte');
ok((grep { index($_, '\u0008') >= 0 } @got), 'pass-through escape kept');
is(stream_content($r), "emulator reply to: $control", 'pass-through content');
is($r->{events}[-1], '[DONE]', 'pass-through done last');
$row = stream_log_row($t, $r) // {};
is($row->{chunks}, 3, 'pass-through log chunks');
is($row->{completion_tokens}, $t->word_count("emulator reply to: $control"),
    'pass-through log completion tokens');

# With the provider prefix the chunk names another model and is rewritten.

$r = stream_chat($t, model => 'openai/gpt-4o-mini', content => $pass_content);
@got = chunk_events(@{ $r->{events} });
ok(!(grep { index($_, '\u0008') >= 0 } @got), 'rewrite escape not kept');
ok((grep { index($_, '\b') >= 0 } @got), 'rewrite escape by yajl');
ok(!(grep { !/"model":"openai\/gpt-4o-mini"/ } @got), 'rewrite model requested');
is(stream_content($r), "emulator reply to: $control", 'rewrite content');

$t->finish;
