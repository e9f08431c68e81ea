#!/usr/bin/perl

# A provider's error event in a stream may quote the key it was called with.
# A client that chats with a stored key must not see that key in the error
# event, whether the error comes first or after some content, and the
# request log must not keep it either. The key here has no "sk-" prefix,
# so only the redaction of the request's own key can catch it.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Chatgate::Test;

require './t/stream_helpers.pl';

my $t = Chatgate::Test->new();
$t->wait_keys_loaded;

my $secret = 'gsk_' . join('', map { sprintf '%02x', int rand 256 } 1 .. 16);

# A provider on 127.0.0.1 that answers each chat with an SSE stream: with
# "[content]" in the request one content chunk first, then an error event
# whose message quotes the bearer token of the request. With "[long]" the
# message starts with 260 bytes of text, so the key straddles byte 300,
# where the worker cuts a provider's error message.

my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Proto => 'tcp', Listen => 8, ReuseAddr => 1)
    or die "listen on 127.0.0.1 failed: $!";
my $port = $listener->sockport;

sub serve_one {
    my $conn = $listener->accept or return 0;
    my $head = '';

    while ($head !~ /\r\n\r\n/) {
        sysread($conn, $head, 4096, length $head) or return 0;
    }

    my ($headers, $body) = split /\r\n\r\n/, $head, 2;
    my ($length) = $headers =~ /^Content-Length:\s*(\d+)/mi;
    while (length($body) < ($length // 0)) {
        sysread($conn, $body, 4096, length $body) or last;
    }

    my ($token) = $headers =~ /^Authorization:\s*Bearer\s+(\S+)/mi;
    $token //= '(none)';

    my $chunk = '{"id":"chatcmpl-fake","object":"chat.completion.chunk",'
        . '"created":1,"model":"fake","choices":[{"index":0,'
        . '"delta":{"content":"partial"},"finish_reason":null}]}';
    my $pad = $body =~ /\[long\]/ ? 'x' x 260 : '';
    my $error = '{"error":{"message":"' . $pad . 'Incorrect API key provided: '
        . $token . '","type":"invalid_request_error"}}';

    print $conn "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        . "Connection: close\r\n\r\n"
        . ($body =~ /\[content\]/ ? "data: $chunk\n\n" : '')
        . "data: $error\n\n";
    close $conn;
    return 1;
}

$t->in_background('fake_provider', sub {
    my $served = 0;
    $served += serve_one() for 1 .. 3;
    return { served => $served };
});
close $listener;

my $id = $t->add_key(provider => 'openai', label => 'echoing provider',
    secret => $secret, base_url => "http://127.0.0.1:$port/v1");

for my $case ('first', 'content', 'long') {
    my $content = $case eq 'content' ? '[content] hello'
        : $case eq 'long' ? '[long] hello' : 'hello';
    my $r = stream_chat($t, key => undef, model => 'gpt-4o-mini',
        content => $content, timeout => 10,
        headers => { 'X-Key-Id' => $id, 'X-Admin-Token' => $t->admin_token });

    my $all = join "\n", @{ $r->{events} }, $r->{rest} // '';
    like($all, qr/Incorrect API key provided/,
        "stream error $case reaches the client");
    unlike($all, qr/\Q$secret\E/, "stream error $case hides the key");
    unlike($all, qr/\Q@{[substr $secret, 0, 8]}\E/,
        "stream error $case hides a key prefix");

    my $row = stream_log_row($t, $r) // {};
    ok(defined $row->{ok} && !$row->{ok}, "stream error $case logged not ok");
    unlike($row->{error_message} // '', qr/\Q$secret\E/,
        "stream error $case log hides the key");
}

is(($t->result('fake_provider', 15) // {})->{served}, 3,
    'fake provider served every chat');

$t->stop;

is(join(', ', $t->logs_containing($secret, qw(error access worker))), '',
    'stream error key in no log');

$t->finish;
