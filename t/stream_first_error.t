#!/usr/bin/perl

# A stream whose very first provider event is an error or is malformed:
# nothing has reached the client yet, so the client gets the error's status
# and an OpenAI error body, as for a complete chat, and not a 200 with an
# error event.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Chatgate::Test;

require './t/stream_helpers.pl';

my $t = Chatgate::Test->new();

for my $knob ('error_at=0', 'bad_at=0') {
    my $name = "first event $knob";
    my $r = stream_chat($t, model => 'ollama/llama3',
        content => "[emu $knob] fail at once", timeout => 10);

    is($r->{status}, 502, "$name status");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$name content type");

    my $body = eval { decode_json($r->{rest}) } // {};
    is($body->{error}{type}, 'upstream_error', "$name error type");
    like($body->{error}{message} // '', qr/^provider "ollama" /,
        "$name error message");

    my $row = stream_log_row($t, $r) // {};
    is($row->{status}, 502, "$name log status");
    ok(defined $row->{ok} && !$row->{ok}, "$name log not ok");
    is($row->{error_class}, 'upstream_stream', "$name log class");
}

# An error after the first content chunk still ends a 200 stream.

my $r = stream_chat($t, model => 'ollama/llama3',
    content => '[emu error_at=1] one two three', timeout => 10);
is($r->{status}, 200, 'later error status');
my @json = stream_json($r);
ok($json[-1]{error}, 'later error event');

$t->finish;
