#!/usr/bin/perl

# Streamed chats that go wrong: a provider error event mid-stream, a
# provider that drops the connection, a client that hangs up, and a client
# that reads slowly while the provider sends a long answer.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Chatgate::Test;

require './t/stream_helpers.pl';

my $t = Chatgate::Test->new(env => { CHATGATE_STREAM_BUFFER => '256k' });

sub worker_memory_kb {
    my ($field) = @_;
    open my $fh, '<', '/proc/' . $t->pid('worker') . '/status' or return undef;
    while (<$fh>) {
        return $1 if /^\Q$field\E:\s+(\d+) kB/;
    }
    return undef;
}

# A provider error event after three content chunks.

my $r = stream_chat($t, content => '[emu chunks=6 error_at=3] fail midway');
is($r->{status}, 200, 'mid-stream error status stays 200');
my @json = stream_json($r);
ok($json[-1]{error}, 'mid-stream error last event is an error');
like($json[-1]{error}{message} // '', qr/mid-stream/, 'mid-stream error message');
ok(!(grep { $_ eq '[DONE]' } @{ $r->{events} }), 'mid-stream error no done');
ok($r->{complete}, 'mid-stream error reply ended');
my $row = stream_log_row($t, $r) // {};
ok(defined $row->{ok} && !$row->{ok}, 'mid-stream error log not ok');
is($row->{status}, 200, 'mid-stream error log status');
is($row->{error_class}, 'upstream_stream', 'mid-stream error log class');
is($row->{chunks}, 3, 'mid-stream error log chunks');

# The provider drops the connection after three chunks: the partial stream
# and an error event, and no retry since bytes reached the client.

$r = stream_chat($t, content => '[emu chunks=6 drop_at=3 tag=drop-once] cut me off');
is($r->{status}, 200, 'provider drop status');
@json = stream_json($r);
is(scalar(grep { ($_->{choices}[0]{delta}{content} // '') ne '' } grep { $_->{choices} } @json),
    3, 'provider drop partial content');
ok($json[-1]{error}, 'provider drop error event');
$row = stream_log_row($t, $r) // {};
is($row->{error_class}, 'upstream_stream', 'provider drop log class');
is(scalar $t->emulator_requests_with('drop-once'), 1, 'provider drop not retried');

# The client hangs up: the provider transfer stops and the row says 499.

$r = stream_chat($t, content => '[emu chunks=400 chunk_delay_ms=20] long story',
    hang_up_after => 5);
ok($r->{hung_up}, 'client abort hung up');
$row = stream_log_row($t, $r) // {};
is($row->{status}, 499, 'client abort log status');
is($row->{error_class}, 'client_closed', 'client abort log class');
cmp_ok(($row->{latency_ms} // 1e9) / 1000 - $r->{hung_up}, '<', 1.5,
    'client abort noticed within a second');

my $deadline = time + 3;
sleep 0.1 while time < $deadline
    && !$t->log_lines('emulator', qr/stream closed by the client/);
ok(scalar $t->log_lines('emulator', qr/stream closed by the client/),
    'client abort provider transfer closed');

# A slow client and a long answer: the worker pauses the provider instead
# of holding the answer in memory. 100000 words are about 18 MB of events.

my $hwm_before = worker_memory_kb('VmHWM');
$r = stream_chat($t, content => '[emu words=100000] a very long answer',
    read_size => 4096, read_delay => 0.05, rcvbuf => 8192, timeout => 4);
my $hwm_after = worker_memory_kb('VmHWM');
ok(!$r->{complete}, 'slow client still reading after 4 s');
cmp_ok(scalar @{ $r->{events} }, '>', 10, 'slow client got events');
SKIP: {
    # ASan keeps freed memory in quarantine, so RSS says little there.
    skip 'worker memory under a sanitizer build', 1
        if ($ENV{CHATGATE_BUILD} // '') =~ m{/san/?$};
    cmp_ok($hwm_after - $hwm_before, '<', 8 * 1024, 'slow client worker memory bounded')
        or diag("VmHWM $hwm_before kB before, $hwm_after kB after");
}
$row = stream_log_row($t, $r) // {};
is($row->{status}, 499, 'slow client hang up logged');
ok(scalar $t->wait_log_lines('worker', qr/stream paused \d+ times/),
    'slow client provider paused');

# The words stream, read at full speed, arrives whole.

$r = stream_chat($t, content => '[emu words=20000] read it all', timeout => 30);
ok($r->{complete}, 'long stream complete');
my @words = split ' ', stream_content($r);
is(scalar @words, 20000, 'long stream word count');
is($words[-1], 'w20000', 'long stream last word');

# A malformed provider event in the middle of a burst, after the first
# content chunk, where the worker translates at its lowest loop priority:
# the chunks before it arrive in order, then an error event, no [DONE].

for my $model ('openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku',
    'ollama/llama3')
{
    $r = stream_chat($t, model => $model,
        content => '[emu words=3000 bad_at=2000] break in a burst',
        timeout => 30);
    is($r->{status}, 200, "bad event $model status");
    @json = stream_json($r);
    like($json[-1]{error}{message} // '', qr/invalid stream event/,
        "bad event $model error event");
    is($json[-1]{error}{type}, 'upstream_error', "bad event $model error type");
    ok(!(grep { $_ eq '[DONE]' } @{ $r->{events} }), "bad event $model no done");
    is(stream_content($r), join(' ', map { "w$_" } 1 .. 2000),
        "bad event $model content before it");
    $row = stream_log_row($t, $r) // {};
    is($row->{status}, 200, "bad event $model log status");
    ok(defined $row->{ok} && !$row->{ok}, "bad event $model log not ok");
    is($row->{error_class}, 'upstream_stream', "bad event $model log class");
    is($row->{chunks}, 2000, "bad event $model log chunks");
}

$t->finish;
