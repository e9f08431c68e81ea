#!/usr/bin/perl

# The module removes the write event of a connection to the worker once the
# response header arrives, and nginx adds it back when a send blocks. This
# script reuses such connections for requests that need the write event
# again, over HTTP/1.1 keep-alive and over HTTP/2:
# - streamed chats followed by chats whose 700 KiB body fills the socket;
# - a 700 KiB body that the worker rejects with 413 after its header, while
#   nginx is still sending the body, followed by chats on the same client
#   connection.

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $h2_port = Chatgate::Test::free_port();

my $t = Chatgate::Test->new(
    server_conf => "        listen 127.0.0.1:$h2_port http2;\n");

my $json = JSON::PP->new->utf8->canonical;
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
my $large = 'word ' x int(700 * 1024 / 5);

sub chat_body {
    my ($content, $stream) = @_;
    return $json->encode({ model => 'openai/gpt-4o-mini',
        messages => [ { role => 'user', content => $content } ],
        ($stream ? (stream => JSON::PP::true) : ()) });
}

sub chat {
    my ($content, $stream) = @_;
    my $started = time;
    my $r = $http->request('POST', $t->url('/v1/chat/completions'), {
        headers => { Authorization => 'Bearer ' . $t->key,
                     'Content-Type' => 'application/json' },
        content => chat_body($content, $stream) });
    $r->{elapsed} = time - $started;
    return $r;
}

sub check {
    my ($r, $status, $what) = @_;
    is($r->{status}, $status, "$what: status");
    cmp_ok($r->{elapsed}, '<', 15, "$what: within 15 s");
}

for my $round (1 .. 3) {
    my $r = chat("[emu chunks=20 chunk_delay_ms=5] stream $round", 1);
    check($r, 200, "round $round stream");
    like($r->{content}, qr/data: \[DONE\]/, "round $round stream complete");

    check(chat($large), 200, "round $round large chat after the stream");
    check(chat("small $round"), 200, "round $round small chat");
    check(chat($large, 1), 200, "round $round large streamed chat");
    check(chat("after $round"), 200, "round $round small chat after it");
}

# The worker's limit below nginx's: the worker answers 413 when it has read
# the header, while nginx still sends the body.
$t->stop_process('worker', 'TERM');
$t->start_worker(CHATGATE_MAX_BODY_SIZE => 256 * 1024);

for my $round (1 .. 3) {
    check(chat("before $round"), 200, "early answer round $round small chat");
    my $r = chat($large);
    ok($r->{status} == 413 || $r->{status} == 502,
        "early answer round $round: 413 or 502 ($r->{status})");
    cmp_ok($r->{elapsed}, '<', 15, "early answer round $round: within 15 s");
    check(chat("after $round"), 200, "early answer round $round chat after it");
}

$t->stop_process('worker', 'TERM');
$t->start_worker();

# HTTP/2: one connection, chats one after the other. curl 7.88's command
# line tool fails every request after the first on a reused HTTP/2
# connection ("Error in the HTTP2 framing layer", even against a plain
# "return 200"), so Node's http2 module is the client.
SKIP: {
    skip 'node not found', 1 unless system('node --version >/dev/null 2>&1') == 0;

    my $dir = $t->dir;
    my %files = (
        small  => chat_body('h2 small'),
        stream => chat_body('[emu chunks=20 chunk_delay_ms=5] h2 stream', 1),
        large  => chat_body($large),
    );
    for my $name (keys %files) {
        open my $fh, '>', "$dir/h2-$name.json" or die "open failed: $!";
        print $fh $files{$name};
        close $fh;
    }

    my @order = qw(small stream large small large stream small large small);
    my $started = time;
    open my $run, '-|', 'node', 't/node/h2_chats.mjs',
        "http://127.0.0.1:$h2_port/v1/chat/completions", $t->key,
        map { "$dir/h2-$_.json" } @order
        or die "run node failed: $!";
    my @lines = <$run>;
    close $run;
    my $elapsed = time - $started;

    is(scalar @lines, scalar @order, 'http2 every request answered');
    for my $i (0 .. $#lines) {
        my $r = eval { $json->decode($lines[$i]) } // {};
        is($r->{status}, 200, "http2 request $i ($order[$i]) status");
        cmp_ok($r->{ms} // 1e9, '<', 15000, "http2 request $i ($order[$i]) within 15 s");
        is($r->{connects}, 1, "http2 request $i ($order[$i]) on the first connection");
    }
    cmp_ok($elapsed, "<", 90, "http2 requests took $elapsed s");
}

$t->finish;
