#!/usr/bin/perl

# A first content chunk larger than the worker's socket to nginx can take
# at once. The worker sends it, the socket fills, and the rest must go out
# when nginx has read some. The write event was activated for that same
# chunk, so the worker has to re-add it for the socket, or the stream
# stalls until the request timeout.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

require './t/stream_helpers.pl';

my $t = Chatgate::Test->new(env => { CHATGATE_REQUEST_TIMEOUT_MS => '20000' });

# words=50000 chunks=1 is one event of about 340 KB, words=100000 of about
# 690 KB; a unix socket takes about 210 KB at once with Linux's defaults.
# Each size runs a few times, because whether nginx reads in between
# decides which path the write takes.

for my $model ('openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku') {
    for my $words (50000, 100000) {
        for my $try (1 .. 3) {
            my $name = "large chunk $model $words words try $try";
            my $r = stream_chat($t, model => $model,
                content => "[emu words=$words chunks=1] one big chunk",
                timeout => 8);

            is($r->{status}, 200, "$name status");
            ok($r->{complete}, "$name complete");
            cmp_ok($r->{elapsed}, '<', 5, "$name within 5 s");
            is($r->{events}[-1] // '', '[DONE]', "$name ends with done");

            my @words = split ' ', stream_content($r);
            is(scalar @words, $words, "$name word count");
        }
    }
}

$t->finish;
