#!/usr/bin/perl

# Chats through /v1/chat/completions for every provider kind and through
# /chat, against the provider emulator; the chat_logs row of a success;
# /healthz; a chat without credentials.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

# model => [provider, path the emulator must have received]
my @cases = (
    [ 'openai/gpt-4o-mini',                       'openai',     '/v1/chat/completions' ],
    [ 'openrouter/meta-llama/llama-3-8b-instruct', 'openrouter', '/api/v1/chat/completions' ],
    [ 'anthropic/claude-3-haiku-20240307',        'anthropic',  '/v1/messages' ],
    [ 'ollama/llama3',                            'ollama',     '/api/chat' ],
    [ 'gpt-4o',                                   'openai',     '/v1/chat/completions' ],
);

for my $case (@cases) {
    my ($model, $provider, $path) = @$case;
    my $unit = $model =~ m{/} ? "chat $provider" : 'chat default provider';
    my $content = "hello $model from the test";
    my $reply = "emulator reply to: $content";

    my $r = $t->chat(model => $model, content => $content);
    is($r->{status}, 200, "$unit status");

    my $body = $r->{json} // {};
    is($body->{object}, 'chat.completion', "$unit object");
    like($body->{id} // '', qr/\S/, "$unit id");
    my $choice = $body->{choices}[0] // {};
    is($choice->{message}{role}, 'assistant', "$unit role");
    is($choice->{message}{content}, $reply, "$unit reply text");
    ok(defined $choice->{finish_reason}, "$unit finish reason");

    my $usage = $body->{usage} // {};
    is($usage->{prompt_tokens}, $t->word_count($content), "$unit prompt tokens");
    is($usage->{completion_tokens}, $t->word_count($reply), "$unit completion tokens");
    is($usage->{total_tokens},
        $t->word_count($content) + $t->word_count($reply), "$unit total tokens");

    (my $provider_model = $model) =~ s{^\Q$provider\E/}{};
    my @seen = grep { ($_->{model} // '') eq $provider_model } $t->emulator_requests();
    is(scalar @seen, 1, "$unit emulator received it");
    is($seen[0]{path}, $path, "$unit emulator path");

    my $rid = $t->request_id($r->{tag});
    my $row = $rid ? $t->log_row($rid) : undef;
    ok($row, "$unit log row");
    is($row->{provider}, $provider, "$unit log provider");
}

# The chat_logs row of the last success, field by field.

my $content = 'count these four words';
my $reply = "emulator reply to: $content";
my $r = $t->chat(content => $content);
is($r->{status}, 200, 'log row success status');

my $rid = $t->request_id($r->{tag});
ok($rid, 'log row success request id in access log');
my $row = $rid ? $t->log_row($rid) : undef;
ok($row, 'log row success written');
$row //= {};

is($row->{request_id}, $rid, 'log row success request id');
is($row->{client_addr}, '127.0.0.1', 'log row success client addr');
is($row->{key_id}, 'byok', 'log row success key id');
is($row->{provider}, 'openai', 'log row success provider');
like($row->{model} // '', qr/gpt-4o-mini/, 'log row success model');
ok($row->{ok}, 'log row success ok');
is($row->{status}, 200, 'log row success status');
ok(defined $row->{latency_ms} && $row->{latency_ms} >= 0, 'log row success latency');
is($row->{prompt_tokens}, $t->word_count($content), 'log row success prompt tokens');
is($row->{completion_tokens}, $t->word_count($reply), 'log row success completion tokens');
is($row->{total_tokens},
    $t->word_count($content) + $t->word_count($reply), 'log row success total tokens');
ok(!$row->{error_class}, 'log row success no error class');
ok(!$row->{stream}, 'log row success not stream');

# /chat: the form that the chat page posts.

$content = 'hello from the chat page';
$r = $t->request('POST', '/chat',
    headers => { Authorization => 'Bearer ' . $t->key },
    json    => {
        provider => 'openai',
        model    => 'gpt-4o-mini',
        messages => [ { role => 'user', content => $content } ],
    });
is($r->{status}, 200, 'chat page status');
like($r->{content}, qr/emulator reply to: \Q$content\E/, 'chat page reply text');

$rid = $t->request_id($r->{tag});
$row = $rid ? $t->log_row($rid) : undef;
ok($row, 'chat page log row');

# No credential at all.

my $forwarded = $t->emulator_requests();
$r = $t->chat(key => undef, content => 'who am i');
is($r->{status}, 401, 'chat no authorization status');
like($r->{json}{error}{message} // '', qr/\S/, 'chat no authorization error message');
is(scalar $t->emulator_requests(), $forwarded, 'chat no authorization not forwarded');

# The log copy of that message goes through the secret redaction, which
# must leave the worker's own wording whole.
$rid = $t->request_id($r->{tag});
$row = $rid ? $t->log_row($rid) : undef;
is($row && $row->{error_message}, $r->{json}{error}{message},
    'chat no authorization logged message whole');
unlike($row ? $row->{error_message} // '' : '', qr/redacted/,
    'chat no authorization logged message not redacted');

# Health.

$r = $t->request('GET', '/healthz');
is($r->{status}, 200, 'healthz status');

$t->finish;
