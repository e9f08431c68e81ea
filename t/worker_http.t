#!/usr/bin/perl

# The worker's own HTTP/1.1 server, spoken to in raw bytes on its unix
# socket: keep-alive and pipelining, chunked request bodies, 100-continue,
# HEAD, HTTP/1.0, and the JSON errors for requests it cannot frame or
# accept. After each bad request the worker must go on serving.

use strict;
use warnings;

use IO::Socket::UNIX;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $socket_path = $t->dir . '/run/worker.sock';
my $json = JSON::PP->new;
my $chat = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "raw http"}]}';

sub connect_worker {
    my $s = IO::Socket::UNIX->new(Peer => $socket_path)
        or die "connect to $socket_path failed: $!";
    $s->autoflush(1);
    return $s;
}

# Reads from $s until it has $count complete responses (each framed by its
# Content-Length or chunked encoding), the worker closes, or 10 s pass.
# Returns a list of { status, headers, body } and whether the socket closed.
sub read_responses {
    my ($s, $count) = @_;
    my ($raw, @out, $closed) = ('');
    my $deadline = time + 10;

    while (@out < $count && time < $deadline) {
        my $parsed = parse_one(\$raw);
        if ($parsed) {
            push @out, $parsed;
            next;
        }
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, 0.2);
        my $n = sysread($s, $raw, 65536, length $raw);
        if (!$n) {
            $closed = 1;
            my $last = parse_one(\$raw);
            push @out, $last if $last;
            last;
        }
    }

    return (\@out, $closed, $raw);
}

# Takes one complete response off the front of $$raw, or returns undef.
sub parse_one {
    my ($raw) = @_;
    my $end = index($$raw, "\r\n\r\n");
    return undef if $end < 0;

    my $head = substr($$raw, 0, $end);
    my ($status_line, @lines) = split /\r\n/, $head;
    my %h;
    for (@lines) {
        my ($n, $v) = split /:\s*/, $_, 2;
        $h{ lc $n } = defined $h{ lc $n } ? "$h{lc $n}\n$v" : $v;
    }
    my ($status) = $status_line =~ m{^HTTP/1\.\d (\d{3})};
    my $rest = substr($$raw, $end + 4);
    my $body;

    if ($status == 100) {
        $$raw = $rest;
        return { status => 100, headers => \%h, body => '' };
    }

    if (($h{'transfer-encoding'} // '') eq 'chunked') {
        $body = '';
        my $pos = 0;
        while (1) {
            my $eol = index($rest, "\r\n", $pos);
            return undef if $eol < 0;
            my $size = hex(substr($rest, $pos, $eol - $pos));
            return undef if length($rest) < $eol + 2 + $size + 2;
            if ($size == 0) {
                $pos = $eol + 4;
                last;
            }
            $body .= substr($rest, $eol + 2, $size);
            $pos = $eol + 2 + $size + 2;
        }
        $$raw = substr($rest, $pos);
    } else {
        my $len = $h{'content-length'} // 0;
        return undef if length($rest) < $len;
        $body = substr($rest, 0, $len);
        $$raw = substr($rest, $len);
    }

    return { status => $status, headers => \%h, body => $body,
             json => scalar eval { $json->decode($body) } };
}

sub chat_request {
    my (%opt) = @_;
    my $version = $opt{version} // '1.1';
    my $body = $opt{body} // $chat;

    return "POST /v1/chat/completions HTTP/$version\r\n"
        . "Host: chatgate\r\n"
        . 'Authorization: Bearer ' . $t->key . "\r\n"
        . "Content-Type: application/json\r\n"
        . join('', map { "$_\r\n" } @{ $opt{headers} // [] })
        . ($opt{no_length} ? '' : 'Content-Length: ' . length($body) . "\r\n")
        . "\r\n"
        . ($opt{head_only} ? '' : $body);
}

# Returns 1 when the worker closes $s within 3 s (reading what is left).
sub closed_by_worker {
    my ($s) = @_;
    my $deadline = time + 3;
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;

    while (time < $deadline) {
        next unless select(my $rout = $rin, undef, undef, 0.2);
        my $n = sysread($s, my $buf, 65536);
        return 1 unless $n;
    }
    return 0;
}

# Sends one request on a new connection and returns its first response and
# whether the worker closed the connection after it.
sub one {
    my ($bytes) = @_;
    my $s = connect_worker();
    print $s $bytes;
    my ($out, $closed) = read_responses($s, 1);
    $closed ||= closed_by_worker($s);
    close $s;
    return ($out->[0] // { status => 0, headers => {}, body => '' }, $closed);
}

sub health_ok {
    my ($name) = @_;
    my ($r) = one("GET /healthz HTTP/1.1\r\nHost: chatgate\r\n\r\n");
    is($r->{status}, 200, "$name, worker still serves");
}

# Keep-alive: three chats on one connection, one after the other.
{
    my $s = connect_worker();
    my @status;
    for (1 .. 3) {
        print $s chat_request();
        my ($out) = read_responses($s, 1);
        push @status, $out->[0]{status} // 0;
    }
    is("@status", '200 200 200', 'keep-alive three chats');
    close $s;
}

# Pipelining: two chats and a health check in one write come back in order.
{
    my $s = connect_worker();
    print $s chat_request() . "GET /healthz HTTP/1.1\r\nHost: chatgate\r\n\r\n"
        . chat_request(body => '{"model": "openai/gpt-4o-mini", "messages": '
                       . '[{"role": "user", "content": "second"}]}');
    my ($out) = read_responses($s, 3);
    is(scalar @$out, 3, 'pipelined three responses');
    is($out->[0]{status}, 200, 'pipelined first chat');
    is($out->[1]{status}, 200, 'pipelined health check');
    like($out->[1]{body}, qr/"status"/, 'pipelined health body');
    is($out->[2]{status}, 200, 'pipelined second chat');
    like($out->[2]{json}{choices}[0]{message}{content} // '', qr/\S/,
         'pipelined second chat content');
    close $s;
}

# A chunked request body, split into three chunks with an extension.
{
    my ($a, $b, $c) = (substr($chat, 0, 10), substr($chat, 10, 30),
                       substr($chat, 40));
    my $chunked = sprintf("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n%X\r\n%s\r\n0\r\n\r\n",
                          length $a, $a, length $b, $b, length $c, $c);
    my ($r) = one(chat_request(no_length => 1,
                               headers => ['Transfer-Encoding: chunked'],
                               body => $chunked));
    is($r->{status}, 200, 'chunked body chat');
    is($r->{json}{object}, 'chat.completion', 'chunked body completion');
}

# A chunked body sent in pieces, with a pause between them.
{
    my $s = connect_worker();
    my $half = int(length($chat) / 2);
    print $s chat_request(no_length => 1, head_only => 1,
                          headers => ['Transfer-Encoding: chunked'])
        . sprintf("%x\r\n%s\r\n", $half, substr($chat, 0, $half));
    select(undef, undef, undef, 0.3);
    print $s sprintf("%x\r\n%s\r\n0\r\n\r\n", length($chat) - $half,
                     substr($chat, $half));
    my ($out) = read_responses($s, 1);
    is($out->[0]{status}, 200, 'chunked body in pieces chat');
    close $s;
}

# A chunk-size line gets the same verdict whether it arrives in one piece or
# is cut in the middle of its extension: up to 64 bytes it is served, a longer
# one is malformed.
for my $case ([ 'short chunk extension', 50, 200 ],
              [ 'long chunk extension', 80, 400 ])
{
    my ($name, $ext_len, $status) = @$case;
    my $bytes = chat_request(no_length => 1,
                             headers => ['Transfer-Encoding: chunked'],
                             body => sprintf("%x;%s\r\n%s\r\n0\r\n\r\n",
                                             length $chat, 'e' x $ext_len,
                                             $chat));
    my ($r) = one($bytes);
    is($r->{status}, $status, "$name in one piece");

    # the worker may close before the second piece is sent
    local $SIG{PIPE} = 'IGNORE';
    my $s = connect_worker();
    my $cut = index($bytes, 'e' x $ext_len) + $ext_len - 5;
    print $s substr($bytes, 0, $cut);
    select(undef, undef, undef, 0.2);
    print $s substr($bytes, $cut);
    my ($out) = read_responses($s, 1);
    is($out->[0]{status} // 0, $status, "$name cut in two");
    close $s;
}

# A chunked body under the body limit whose one-byte chunks make it take
# more than the largest read buffer gets a 413, not a silent close.
{
    my $data = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", '
        . '"content": "' . ('x' x 800000) . '"}]}';
    my $bytes = chat_request(no_length => 1, head_only => 1,
                             headers => ['Transfer-Encoding: chunked'])
        . join('', map { "1\r\n$_\r\n" } split //, $data) . "0\r\n\r\n";

    # the worker closes before the whole body is sent
    local $SIG{PIPE} = 'IGNORE';
    my $s = connect_worker();
    while (length $bytes) {
        last unless defined syswrite($s, substr($bytes, 0, 65536, ''));
    }
    my ($out) = read_responses($s, 1);
    is($out->[0]{status} // 0, 413, 'one-byte chunks over buffer status');
    like($out->[0]{json}{error}{message} // '', qr/Content-Length/,
         'one-byte chunks over buffer message');
    close $s;
}

# Expect: 100-continue gets the interim response before the body is sent.
{
    my $s = connect_worker();
    print $s chat_request(head_only => 1, headers => ['Expect: 100-continue']);
    my ($out) = read_responses($s, 1);
    is($out->[0]{status}, 100, '100-continue interim response');
    print $s $chat;
    ($out) = read_responses($s, 1);
    is($out->[0]{status}, 200, '100-continue chat');
    close $s;
}

# A body larger than the read buffer, arriving in pieces.
{
    my $big = '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", '
        . '"content": "' . ('x' x 100000) . '"}]}';
    my $s = connect_worker();
    my $bytes = chat_request(body => $big);
    while (length $bytes) {
        print $s substr($bytes, 0, 7000, '');
        select(undef, undef, undef, 0.01);
    }
    my ($out) = read_responses($s, 1);
    is($out->[0]{status}, 200, 'large body in pieces chat');
    close $s;
}

# HEAD gets the headers and the length of the body it does not get.
{
    my $s = connect_worker();
    print $s "HEAD /healthz HTTP/1.1\r\nHost: chatgate\r\n\r\n"
        . "GET /healthz HTTP/1.1\r\nHost: chatgate\r\n\r\n";
    my $raw = '';
    my $deadline = time + 5;
    while (time < $deadline && $raw !~ /\r\n\r\nHTTP.*\r\n\r\n\{.*\}/s) {
        sysread($s, $raw, 4096, length $raw) or last;
    }
    my ($head1, $rest) = split /\r\n\r\n/, $raw, 2;
    like($head1, qr/^HTTP\/1\.1 200/, 'HEAD status');
    my ($length) = $head1 =~ /\r\nContent-Length: (\d+)/i;
    ok($length && $length > 0, 'HEAD content length of the body');
    like($rest // '', qr/^HTTP\/1\.1 200/, 'HEAD response has no body');
    close $s;
}

# HTTP/1.0 closes after the response unless it asks for keep-alive.
{
    my ($r, $closed) = one(chat_request(version => '1.0'));
    is($r->{status}, 200, 'HTTP/1.0 chat');
    is(lc($r->{headers}{connection} // ''), 'close', 'HTTP/1.0 connection close');
    ok($closed, 'HTTP/1.0 worker closed');

    my $s = connect_worker();
    print $s chat_request(version => '1.0', headers => ['Connection: keep-alive']);
    my ($out, $gone) = read_responses($s, 1);
    is(lc($out->[0]{headers}{connection} // ''), 'keep-alive',
       'HTTP/1.0 keep-alive header');
    print $s chat_request(version => '1.0', headers => ['Connection: keep-alive']);
    ($out) = read_responses($s, 1);
    is($out->[0]{status}, 200, 'HTTP/1.0 keep-alive second chat');
    close $s;
}

# Connection: close from an HTTP/1.1 client.
{
    my ($r, $closed) = one(chat_request(headers => ['Connection: close']));
    is($r->{status}, 200, 'connection close chat');
    ok($closed, 'connection close worker closed');
}

# Every tchar of RFC 9110 in a header name, and a value with a tab and
# obs-text bytes, are accepted.
{
    my ($r) = one("GET /healthz HTTP/1.1\r\nHost: x\r\n"
                  . "X-!#\$%&'*+-.^_`|~09azAZ: a\tb \x80\xff~\r\n\r\n");
    is($r->{status}, 200, 'header of every allowed byte accepted');
}

# X-Chatgate-Request-Id comes back as X-Request-Id when it is 1 to 47
# letters, digits and ".:-_", and is replaced by 32 hex digits otherwise.
for my $case ([ 'token of every allowed byte', 'azAZ09.:-_', 1 ],
              [ 'id of 47 bytes', 'a' x 47, 1 ],
              [ 'id of 48 bytes', 'a' x 48, 0 ],
              [ 'id with a slash', 'ab/cd', 0 ],
              [ 'id with a plus', 'ab+cd', 0 ]) {
    my ($name, $id, $kept) = @$case;
    my ($r) = one(chat_request(headers => ["X-Chatgate-Request-Id: $id"]));
    is($r->{status}, 200, "$name status");
    if ($kept) {
        is($r->{headers}{'x-request-id'}, $id, "$name kept");
    } else {
        like($r->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}\z/,
             "$name replaced");
    }
}

# Requests the worker cannot frame: a JSON error, then the connection closes.
my @bad = (
    [ 'malformed request line', "GARBAGE\r\n\r\n", 400 ],
    [ 'unknown method', "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 501 ],
    [ 'lowercase method', "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 501 ],
    [ 'HTTP/2 version', "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505 ],
    [ 'space inside target', "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400 ],
    [ 'space after version', "GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n", 400 ],
    [ 'version without HTTP', "GET /healthz XTTP/1.1\r\nHost: x\r\n\r\n", 400 ],
    [ 'absolute target', "GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400 ],
    [ 'header without colon', "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400 ],
    [ 'space before colon', "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400 ],
    [ 'folded header', "GET /healthz HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n", 400 ],
    [ 'NUL in header', "GET /healthz HTTP/1.1\r\nHost: x\0y\r\n\r\n", 400 ],
    [ 'bare LF in header', "GET /healthz HTTP/1.1\r\nHost: x\ny: z\r\n\r\n", 400 ],
    [ 'DEL in header value', "GET /healthz HTTP/1.1\r\nHost: x\x7fy\r\n\r\n", 400 ],
    [ 'parenthesis in header name', "GET /healthz HTTP/1.1\r\nHost: x\r\nX(a): 1\r\n\r\n", 400 ],
    [ 'empty header name', "GET /healthz HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", 400 ],
    [ 'control byte in target', "GET /health\x01z HTTP/1.1\r\nHost: x\r\n\r\n", 400 ],
    [ 'invalid content length', chat_request(no_length => 1,
        headers => ['Content-Length: 12a']), 400 ],
    [ 'negative content length', chat_request(no_length => 1,
        headers => ['Content-Length: -1']), 400 ],
    [ 'two content lengths', chat_request(headers => ['Content-Length: 5']), 400 ],
    [ 'content length and chunked', chat_request(
        headers => ['Transfer-Encoding: chunked']), 400 ],
    [ 'unknown transfer coding', chat_request(no_length => 1,
        headers => ['Transfer-Encoding: gzip, chunked']), 400 ],
    [ 'chunked on HTTP/1.0', chat_request(version => '1.0', no_length => 1,
        headers => ['Transfer-Encoding: chunked'], body => "0\r\n\r\n"), 400 ],
    [ 'malformed chunk size', chat_request(no_length => 1,
        headers => ['Transfer-Encoding: chunked'], body => "zz\r\nab\r\n0\r\n\r\n"), 400 ],
    [ 'chunk without its CRLF', chat_request(no_length => 1,
        headers => ['Transfer-Encoding: chunked'], body => "2\r\nabcd\r\n0\r\n\r\n"), 400 ],
    [ 'body over the server limit', chat_request(no_length => 1, head_only => 1,
        headers => ['Content-Length: 999999999999']), 413 ],
    [ 'chunked body over the server limit', chat_request(no_length => 1,
        head_only => 1, headers => ['Transfer-Encoding: chunked'])
        . "fffffffff\r\n", 413 ],
    [ 'head over the limit', "GET /healthz HTTP/1.1\r\n"
        . join('', map { "X-Filler-$_: " . ('a' x 1000) . "\r\n" } 1 .. 70)
        . "\r\n", 431 ],
    [ 'too many header lines', "GET /healthz HTTP/1.1\r\n"
        . join('', map { "X-H$_: 1\r\n" } 1 .. 150) . "\r\n", 431 ],
);

for my $case (@bad) {
    my ($name, $bytes, $status) = @$case;
    my ($r, $closed) = one($bytes);
    is($r->{status}, $status, "$name status");
    # Only 500 is the worker's own fault; 501 and 505 reject what the
    # client sent, as nginx's pages for them do.
    is($r->{json}{error}{type}, $status == 500 ? 'server_error' : 'invalid_request_error',
       "$name OpenAI error body");
    ok(length($r->{json}{error}{message} // ''), "$name error message");
    is(lc($r->{headers}{connection} // ''), 'close', "$name connection close");
    ok($closed, "$name worker closed");
}

health_ok('after bad requests');

# A response header value cannot be split into two by the handler's input:
# no CR or LF reaches the output, whatever a client sends.
{
    my ($r) = one("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Chatgate-Request-Id: a\rb\r\n\r\n");
    is($r->{status}, 400, 'CR inside header value rejected');
}

# Clients that go away: in the middle of the head, of the body, and right
# after sending a chat.
{
    my $s = connect_worker();
    print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: chatgate\r\nContent-Le";
    close $s;

    $s = connect_worker();
    print $s chat_request(no_length => 1, head_only => 1,
                          headers => ['Content-Length: 500']) . '{"model":';
    close $s;

    $s = connect_worker();
    print $s chat_request(headers => ['X-Test-Tag: gone-after-send']);
    close $s;

    select(undef, undef, undef, 0.3);
    health_ok('after clients went away');
}

# Many idle connections do not stop the worker from serving.
{
    my @idle = map { connect_worker() } 1 .. 200;
    my ($r) = one(chat_request());
    is($r->{status}, 200, 'chat with 200 idle connections open');
    close $_ for @idle;
}

ok($t->is_running('worker'), 'worker still running');

$t->finish;
