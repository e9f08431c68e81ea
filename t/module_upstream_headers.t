#!/usr/bin/perl

# The module adds X-Chatgate-* request headers for the worker, and
# proxy_pass sends them to whatever upstream it names. A location that
# proxies straight to a provider, without the worker, removes them with
# proxy_set_header and an empty value, as docs/directives.md shows. Here a
# capture server stands in for the provider and records each request head.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Chatgate::Test;

my $port = Chatgate::Test::free_port();
my $capture = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
    Listen => 8, ReuseAddr => 1) or die "listen on 127.0.0.1:$port failed: $!";

my $strip = join "\n", map { "            proxy_set_header $_ \"\";" }
    qw(X-Chatgate-Request-Id X-Chatgate-Client-Addr X-Chatgate-Key-Id
       X-Chatgate-Role X-Chatgate-Subject X-Chatgate-Jti X-Chatgate-Models);

my $t = Chatgate::Test->new(server_conf => <<"CONF");
        location /direct/ {
            chatgate on;
            proxy_pass http://127.0.0.1:$port/;
        }

        location /direct-clean/ {
            chatgate on;
$strip
            proxy_pass http://127.0.0.1:$port/;
        }
CONF

# Answers one request on the capture socket and returns its head, within
# 10 s.
sub captured_head {
    my ($path) = @_;
    my $file = $t->dir . '/capture.head';
    unlink $file;

    my $pid = fork // die "fork failed: $!";
    if ($pid == 0) {
        local $SIG{ALRM} = sub { POSIX::_exit(1) };
        alarm 10;
        my $c = $capture->accept or POSIX::_exit(1);
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 4096, length $head) or last;
        }
        my $body = '{"ok":true}';
        print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh $head;
        close $fh;
        POSIX::_exit(0);
    }

    my $r = $t->chat(path => $path, headers => { 'X-Chatgate-Role' => 'admin' });
    waitpid $pid, 0;
    open my $fh, '<', $file or return ($r, '');
    local $/;
    return ($r, scalar <$fh>);
}

my ($r, $head) = captured_head('/direct/v1/chat/completions');
is($r->{status}, 200, 'upstream headers direct status');
like($head, qr/^X-Chatgate-Request-Id: [0-9a-f]{32}\r$/mi,
     'upstream headers direct request id sent');
like($head, qr/^X-Chatgate-Client-Addr: 127\.0\.0\.1\r$/mi,
     'upstream headers direct client address sent');
unlike($head, qr/^X-Chatgate-Role:/mi,
       'upstream headers direct client role removed');

($r, $head) = captured_head('/direct-clean/v1/chat/completions');
is($r->{status}, 200, 'upstream headers clean status');
like($head, qr{^POST /v1/chat/completions }, 'upstream headers clean request line');
unlike($head, qr/^X-Chatgate-/mi, 'upstream headers clean none sent');
like($head, qr/^Authorization: Bearer /mi,
     'upstream headers clean provider key sent');

$t->finish();
