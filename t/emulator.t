#!/usr/bin/perl

# Tests for chatgate-emulator: every endpoint complete and streamed, the
# auth errors, the knobs and the request journal. Run from the repository
# root after "make emulator"; CHATGATE_BUILD=build/san runs the sanitizer
# build.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::IP;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $build = $ENV{CHATGATE_BUILD} // 'build';
my $binary = "$build/chatgate-emulator";
plan skip_all => "$binary not built (run make emulator)" unless -x $binary;

my $dir = tempdir(CLEANUP => 1);
my $log = "$dir/emulator.log";
my ($pid, $port, $pid6);

END {
    for my $child ($pid, $pid6) {
        next unless $child;
        kill 'TERM', $child;
        waitpid($child, 0);
    }
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "cannot bind a probe socket: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub read_log {
    open my $fh, '<', $log or return '';
    local $/;
    return <$fh>;
}

# Starts the emulator on a free port; another process may take the port
# between the probe and the bind, so a failed start is retried.
sub start_emulator {
    for my $attempt (1 .. 5) {
        $port = free_port();
        $pid = fork() // die "fork failed: $!";
        if ($pid == 0) {
            open STDERR, '>', $log or die "cannot open $log: $!";
            exec $binary, '--listen', "127.0.0.1:$port", '--verbose'
                or die "exec $binary failed: $!";
        }

        for (1 .. 100) {
            return 1 if read_log() =~ /^chatgate-emulator listening on 127\.0\.0\.1:$port$/m;
            last if waitpid($pid, 1) == $pid;
            sleep 0.05;
        }

        kill 'TERM', $pid;
        waitpid($pid, 0);
        $pid = undef;
    }
    return 0;
}

ok(start_emulator(), 'emulator starts') or BAIL_OUT('emulator did not start: ' . read_log());

my $http = HTTP::Tiny->new(timeout => 10);
my $json = JSON::PP->new->canonical;
my $base = "http://127.0.0.1:$port";

my %openai_auth = ('Authorization' => 'Bearer sk-test-openai');
my %anthropic_auth = ('x-api-key' => 'sk-ant-test', 'anthropic-version' => '2023-06-01');

sub post {
    my ($path, $body, %headers) = @_;
    $body = $json->encode($body) if ref $body;
    return $http->request('POST', "$base$path", {
        headers => { 'Content-Type' => 'application/json', %headers },
        content => $body,
    });
}

sub chat {
    my ($text, %extra) = @_;
    return { model => 'gpt-4o-mini',
             messages => [ { role => 'system', content => 'be brief' },
                           { role => 'user', content => $text } ],
             %extra };
}

sub sse_data {
    my ($body) = @_;
    return map { /^data: (.*)$/ ? $1 : () } split /\r?\n/, $body;
}

sub openai_stream_text {
    my (@data) = @_;
    my $text = '';
    for my $d (grep { $_ ne '[DONE]' } @data) {
        my $chunk = decode_json($d);
        next unless $chunk->{choices} && @{ $chunk->{choices} };
        $text .= $chunk->{choices}[0]{delta}{content} // '';
    }
    return $text;
}

# Sends one request on a raw socket and returns everything the server sent
# until it closed the connection.
sub raw_request {
    my ($path, $body, %headers) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => 10) or die "connect failed: $!";
    $body = $json->encode($body) if ref $body;
    my $req = "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n";
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    print $sock "$req\r\n$body";

    my $raw = '';
    while (1) {
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    close $sock;
    return $raw;
}

# Splits a chunked body into its chunks; returns (chunks, saw final chunk).
sub dechunk {
    my ($raw) = @_;
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my @chunks;
    while ($rest =~ s/^([0-9a-f]+)\r\n//i) {
        my $size = hex $1;
        return (\@chunks, 1) if $size == 0;
        push @chunks, substr($rest, 0, $size, '');
        $rest =~ s/^\r\n//;
    }
    return (\@chunks, 0);
}


# Catalogs

my $r = $http->get("$base/v1/models");
is($r->{status}, 200, 'models status');
my $models = decode_json($r->{content});
is($models->{object}, 'list', 'models list object');
ok(scalar(grep { $_->{id} eq 'gpt-4o-mini' } @{ $models->{data} }), 'models has gpt-4o-mini');

$r = $http->get("$base/api/tags");
is($r->{status}, 200, 'ollama tags status');
ok(scalar @{ decode_json($r->{content})->{models} } >= 1, 'ollama tags lists models');


# OpenAI complete

$r = post('/v1/chat/completions', chat('hello there  world'), %openai_auth);
is($r->{status}, 200, 'openai complete status');
my $c = decode_json($r->{content});
is($c->{object}, 'chat.completion', 'openai complete object');
is($c->{model}, 'gpt-4o-mini', 'openai complete model');
is($c->{choices}[0]{message}{content}, 'emulator reply to: hello there  world', 'openai complete reply');
is($c->{choices}[0]{finish_reason}, 'stop', 'openai complete finish reason');
is($c->{usage}{prompt_tokens}, 5, 'openai prompt tokens');
is($c->{usage}{completion_tokens}, 6, 'openai completion tokens');
is($c->{usage}{total_tokens}, 11, 'openai total tokens');

$r = post('/v1/chat/completions', chat('hi'));
is($r->{status}, 401, 'openai missing bearer 401');
is(decode_json($r->{content})->{error}{code}, 'invalid_api_key', 'openai 401 error code');

$r = post('/v1/chat/completions', chat('hi'), 'Authorization' => 'Bearer ');
is($r->{status}, 401, 'openai empty bearer 401');

$r = post('/v1/chat/completions', '{"model": "x", "messages": [', %openai_auth);
is($r->{status}, 400, 'openai malformed json 400');
ok(decode_json($r->{content})->{error}{message}, 'openai 400 has message');

$r = post('/anything/v1/chat/completions',
          { model => 'm', messages => [ { role => 'user', content => [
              { type => 'text', text => 'part one' },
              { type => 'image_url', image_url => { url => 'x' } },
              { type => 'text', text => 'part two [emu words=0 unknown=1]' } ] } ] },
          %openai_auth);
is(decode_json($r->{content})->{choices}[0]{message}{content},
   'emulator reply to: part one part two', 'openai array content joined');

$r = post('/v1/chat/completions', chat('x ' x 300), %openai_auth);
is(length(decode_json($r->{content})->{choices}[0]{message}{content}),
   length('emulator reply to: ') + 199, 'reply echo cut at 200 bytes');

# 2 + 2 * 100 bytes: the 127-byte field ends inside the 63rd "\x{e9}", which
# is left out whole.
$r = post('/v1/chat/completions',
          encode_json(chat('hi', model => 'ab' . ("\x{e9}" x 100))), %openai_auth);
is($r->{status}, 200, 'long utf-8 model status');
$c = eval { decode_json($r->{content}) };
ok($c, 'long utf-8 model answer is valid JSON');
is($c && $c->{model}, 'ab' . ("\x{e9}" x 62), 'long utf-8 model cut between characters');

# The user text is joined up to 8192 bytes before the directives are taken
# out: 5 + 8100 + 2 bytes, then the 8192-byte cut ends inside the 43rd
# "\x{e9}". Without the directive, the echo is shorter than 200 bytes, so
# only the join can leave a character out.
$r = post('/v1/chat/completions', encode_json(chat('[emu ' . ('x' x 8100)
          . '] ' . ("\x{e9}" x 100))), %openai_auth);
is($r->{status}, 200, 'long utf-8 text status');
$c = eval { decode_json($r->{content}) };
ok($c, 'long utf-8 text answer is valid JSON');
is($c && $c->{choices}[0]{message}{content},
   'emulator reply to: ' . ("\x{e9}" x 42), 'long utf-8 text cut between characters');

$r = post('/v1/chat/completions', chat('go [emu words=5]'), %openai_auth);
$c = decode_json($r->{content});
is($c->{choices}[0]{message}{content}, 'w1 w2 w3 w4 w5', 'words knob reply');
is($c->{usage}{completion_tokens}, 5, 'words knob completion tokens');


# OpenAI stream

$r = post('/v1/chat/completions',
          chat('one two', stream => JSON::PP::true,
               stream_options => { include_usage => JSON::PP::true }),
          %openai_auth);
is($r->{status}, 200, 'openai stream status');
like($r->{headers}{'content-type'}, qr{^text/event-stream}, 'openai stream content type');
my @data = sse_data($r->{content});
is($data[-1], '[DONE]', 'openai stream ends with done');
is(openai_stream_text(@data), 'emulator reply to: one two', 'openai stream text');
my @content = grep { my $j = decode_json($_); $j->{choices}[0] && defined $j->{choices}[0]{delta}{content}
                     && $j->{choices}[0]{delta}{content} ne '' } grep { $_ ne '[DONE]' } @data;
is(scalar @content, 5, 'openai stream one word per chunk');
my $usage = decode_json($data[-2]);
is_deeply($usage->{choices}, [], 'openai usage chunk has empty choices');
is($usage->{usage}{completion_tokens}, 5, 'openai usage chunk completion tokens');
is(decode_json($data[-3])->{choices}[0]{finish_reason}, 'stop', 'openai stream finish reason');

$r = post('/v1/chat/completions', chat('a b [emu usage=none]', stream => JSON::PP::true,
          stream_options => { include_usage => JSON::PP::true }), %openai_auth);
ok(!(grep { /"usage":\{/ } sse_data($r->{content})), 'usage none sends no usage');

$r = post('/v1/chat/completions', chat('a b [emu usage=final]', stream => JSON::PP::true), %openai_auth);
@data = sse_data($r->{content});
is(decode_json($data[-2])->{usage}{prompt_tokens}, 6, 'usage final sends usage unasked');

$r = post('/v1/chat/completions', chat('a b c d e f [emu chunks=2]', stream => JSON::PP::true), %openai_auth);
@data = sse_data($r->{content});
is(scalar @data, 5, 'chunks knob gives role, 2 chunks, finish, done');
is(openai_stream_text(@data), 'emulator reply to: a b c d e f', 'chunks knob keeps text');

$r = post('/v1/chat/completions', chat('a b c [emu error_at=2]', stream => JSON::PP::true), %openai_auth);
@data = sse_data($r->{content});
ok(decode_json($data[-1])->{error}{message}, 'openai error_at sends error event');
is(scalar @data, 4, 'openai error_at after two chunks');
ok(!(grep { $_ eq '[DONE]' } @data), 'openai error_at sends no done');

$r = post('/v1/chat/completions', chat('x [emu crlf=1]', stream => JSON::PP::true), %openai_auth);
like($r->{content}, qr/\r\n\r\n/, 'crlf knob uses crlf');
unlike($r->{content}, qr/(?<!\r)\n/, 'crlf knob has no bare newline');

$r = post('/v1/chat/completions', chat('x [emu comments=1]', stream => JSON::PP::true), %openai_auth);
like($r->{content}, qr/^: keep-alive\n/m, 'comments knob sends keep-alive');

$r = post('/api/v1/chat/completions', chat('x [emu comments=1]', stream => JSON::PP::true), %openai_auth);
like($r->{content}, qr/^: OPENROUTER PROCESSING\n/m, 'openrouter comments line');

my $raw = raw_request('/v1/chat/completions', chat('split me please [emu split_bytes=7]', stream => JSON::PP::true),
                      %openai_auth);
my ($chunks, $final) = dechunk($raw);
ok($final, 'split_bytes stream completes');
ok(scalar @$chunks > 20, 'split_bytes gives many pieces');
ok(!(grep { length($_) > 7 } @$chunks), 'split_bytes pieces at most 7 bytes');
is(openai_stream_text(sse_data(join '', @$chunks)), 'emulator reply to: split me please',
   'split_bytes stream text');

$raw = raw_request('/v1/chat/completions', chat('a b c d [emu drop_at=1]', stream => JSON::PP::true),
                   %openai_auth);
($chunks, $final) = dechunk($raw);
ok(!$final, 'drop_at closes without final chunk');
is(openai_stream_text(sse_data(join '', @$chunks)), 'emulator', 'drop_at after one chunk');

my $t0 = time;
$r = post('/v1/chat/completions', chat('x [emu chunk_delay_ms=50]', stream => JSON::PP::true), %openai_auth);
ok(time - $t0 >= 0.2, 'chunk_delay_ms spaces chunks');
is(openai_stream_text(sse_data($r->{content})), 'emulator reply to: x', 'chunk_delay_ms stream text');


# Status knobs

$r = post('/v1/chat/completions', chat('x [emu status=429 retry_after=7]'), %openai_auth);
is($r->{status}, 429, 'status knob 429');
is($r->{headers}{'retry-after'}, '7', 'retry_after header');
is(decode_json($r->{content})->{error}{code}, 'rate_limit_exceeded', 'openai 429 error code');

$r = post('/v1/chat/completions', chat('x'), %openai_auth, 'X-Emu-Status' => '500');
is($r->{status}, 500, 'status header knob');
ok(!defined $r->{headers}{'retry-after'}, 'no retry-after unasked');

my @statuses = map { post('/v1/chat/completions', chat("x [emu fail_first=2 tag=t$$]"), %openai_auth)->{status} } 1 .. 3;
is_deeply(\@statuses, [503, 503, 200], 'fail_first fails first two');

$t0 = time;
$r = post('/v1/chat/completions', chat('x'), %openai_auth, 'X-Emu-Delay-Ms' => '300');
ok(time - $t0 >= 0.3, 'delay_ms waits');
is($r->{status}, 200, 'delay_ms answer status');


# Anthropic

my $anthropic_body = { model => 'claude-3-5-haiku-latest', max_tokens => 64, system => 'sys prompt',
                       messages => [ { role => 'user', content => 'hi claude' } ] };

$r = post('/v1/messages', $anthropic_body, %anthropic_auth);
is($r->{status}, 200, 'anthropic complete status');
$c = decode_json($r->{content});
is($c->{type}, 'message', 'anthropic complete type');
is($c->{content}[0]{text}, 'emulator reply to: hi claude', 'anthropic complete text');
is($c->{stop_reason}, 'end_turn', 'anthropic stop reason');
is($c->{usage}{input_tokens}, 4, 'anthropic input tokens include system');
is($c->{usage}{output_tokens}, 5, 'anthropic output tokens');

$r = post('/v1/messages', $anthropic_body, 'anthropic-version' => '2023-06-01');
is($r->{status}, 401, 'anthropic missing key 401');
is(decode_json($r->{content})->{error}{type}, 'authentication_error', 'anthropic 401 error type');

$r = post('/v1/messages', $anthropic_body, 'x-api-key' => 'k');
is($r->{status}, 401, 'anthropic missing version 401');

$r = post('/v1/messages', '{]', %anthropic_auth);
is($r->{status}, 400, 'anthropic malformed json 400');
is(decode_json($r->{content})->{type}, 'error', 'anthropic 400 error format');

$r = post('/v1/messages', { %$anthropic_body, stream => JSON::PP::true }, %anthropic_auth);
is($r->{status}, 200, 'anthropic stream status');
my @events = map { /^event: (\S+)/ ? $1 : () } split /\n/, $r->{content};
is_deeply([ @events[0 .. 2] ], [ 'message_start', 'content_block_start', 'ping' ], 'anthropic stream start events');
is_deeply([ @events[-3 .. -1] ], [ 'content_block_stop', 'message_delta', 'message_stop' ], 'anthropic stream end events');
@data = map { decode_json($_) } sse_data($r->{content});
is($data[0]{message}{usage}{input_tokens}, 4, 'anthropic stream input tokens');
is(join('', map { $_->{delta}{text} // '' } grep { $_->{type} eq 'content_block_delta' } @data),
   'emulator reply to: hi claude', 'anthropic stream text');
my ($delta) = grep { $_->{type} eq 'message_delta' } @data;
is($delta->{delta}{stop_reason}, 'end_turn', 'anthropic stream stop reason');
is($delta->{usage}{output_tokens}, 5, 'anthropic stream output tokens');

$r = post('/v1/messages', { %$anthropic_body, stream => JSON::PP::true,
                            messages => [ { role => 'user', content => 'a b [emu error_at=1]' } ] },
          %anthropic_auth);
like($r->{content}, qr/event: error\ndata: \{"type":"error","error":\{"type":"overloaded_error"/,
     'anthropic error_at event');
unlike($r->{content}, qr/message_stop/, 'anthropic error_at ends stream');

$r = post('/v1/messages', { %$anthropic_body, system => 'be quick [emu status=529]' }, %anthropic_auth);
is($r->{status}, 529, 'anthropic knob in system');
is(decode_json($r->{content})->{error}{type}, 'overloaded_error', 'anthropic 529 error type');


# Ollama

my $ollama_body = { model => 'llama3.2', messages => [ { role => 'user', content => 'hi llama' } ] };

$r = post('/api/chat', $ollama_body);
is($r->{status}, 200, 'ollama stream status');
like($r->{headers}{'content-type'}, qr{^application/x-ndjson}, 'ollama stream content type');
my @lines = map { decode_json($_) } split /\n/, $r->{content};
is(join('', map { $_->{message}{content} } @lines), 'emulator reply to: hi llama', 'ollama stream text');
ok(!$lines[0]{done}, 'ollama first line not done');
is($lines[-1]{done}, JSON::PP::true, 'ollama last line done');
is($lines[-1]{done_reason}, 'stop', 'ollama done reason');
is($lines[-1]{prompt_eval_count}, 2, 'ollama prompt eval count');
is($lines[-1]{eval_count}, 5, 'ollama eval count');
ok($lines[-1]{total_duration} > 0, 'ollama total duration');

$r = post('/api/chat', { %$ollama_body, stream => JSON::PP::false });
$c = decode_json($r->{content});
is($c->{message}{content}, 'emulator reply to: hi llama', 'ollama complete text');
is($c->{done}, JSON::PP::true, 'ollama complete done');

$r = post('/api/chat', '{"model":');
is($r->{status}, 400, 'ollama malformed json 400');
ok(decode_json($r->{content})->{error}, 'ollama 400 error format');

$r = post('/api/chat', { %$ollama_body, messages => [ { role => 'user', content => 'a b c [emu error_at=1]' } ] });
@lines = split /\n/, $r->{content};
is(scalar @lines, 2, 'ollama error_at after one line');
like($lines[-1], qr/^\{"error":"/, 'ollama error_at error line');


# Journal and statistics

$r = $http->get("$base/_emulator/requests");
is($r->{status}, 200, 'journal status');
unlike($r->{content}, qr/sk-test-openai|sk-ant-test/, 'journal has no credential');
my $journal = decode_json($r->{content});
my ($entry) = grep { $_->{format} eq 'anthropic' && $_->{status} == 200 } @$journal;
is($entry->{credential_sha256}, sha256_hex('sk-ant-test'), 'journal anthropic credential hash');
($entry) = grep { $_->{format} eq 'openai' && $_->{status} == 429 } @$journal;
is($entry->{credential_sha256}, sha256_hex('sk-test-openai'), 'journal openai credential hash');
is($entry->{knobs}{retry_after}, 7, 'journal knobs');
is($entry->{model}, 'gpt-4o-mini', 'journal model');
is($entry->{path}, '/v1/chat/completions', 'journal path');

for (1 .. 205) {
    post('/v1/chat/completions', chat('fill'), %openai_auth);
}
$journal = decode_json($http->get("$base/_emulator/requests")->{content});
is(scalar @$journal, 200, 'journal keeps last 200');

$r = $http->request('DELETE', "$base/_emulator/requests");
is($r->{status}, 200, 'journal delete status');
is_deeply(decode_json($http->get("$base/_emulator/requests")->{content}), [], 'journal cleared');

my $stats = decode_json($http->get("$base/_emulator/stats")->{content});
ok($stats->{endpoints}{chat_completions} > 200, 'stats chat completions count');
ok($stats->{status}{401} >= 3, 'stats 401 count');

$r = $http->get("$base/v1/unknown");
is($r->{status}, 404, 'unknown path 404');

unlike(read_log(), qr/sk-test-openai|sk-ant-test/, 'log has no credential');

# IPv6 and several threads: a second emulator on [::1] with port 0, which
# reports the port the kernel chose.
SKIP: {
    my $probe = IO::Socket::IP->new(Listen => 1, LocalAddr => '::1', LocalPort => 0);
    skip 'no IPv6 loopback', 3 unless $probe;
    close $probe;

    my $log6 = "$dir/emulator6.log";
    $pid6 = fork() // die "fork failed: $!";
    if ($pid6 == 0) {
        open STDERR, '>', $log6 or die "cannot open $log6: $!";
        exec $binary, '--listen', '[::1]:0', '--threads', '2' or die "exec failed: $!";
    }

    my $port6;
    for (1 .. 100) {
        if (open my $fh, '<', $log6) {
            local $/;
            my $text = <$fh>;
            last if ($port6) = $text =~ /^chatgate-emulator listening on \[::1\]:(\d+)$/m;
        }
        sleep 0.05;
    }
    ok($port6, 'ipv6 emulator starts');

    my @codes = map { $http->get("http://[::1]:$port6/api/tags")->{status} } 1 .. 4;
    is_deeply(\@codes, [200, 200, 200, 200], 'ipv6 two threads serve');

    kill 'TERM', $pid6;
    waitpid($pid6, 0);
    is($? >> 8, 0, 'ipv6 emulator exits cleanly');
    $pid6 = undef;
}

# Stop and check the log.
kill 'TERM', $pid;
waitpid($pid, 0);
is($? >> 8, 0, 'emulator exits cleanly');
$pid = undef;
like(read_log(), qr/info stopped$/m, 'log says stopped');
unlike(read_log(), qr/ERROR|AddressSanitizer|runtime error/, 'no sanitizer reports');

done_testing();
