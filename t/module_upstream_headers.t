#!/usr/bin/perl

# The module adds its X-Chatgate-* request headers only where
# chatgate_upstream_headers is on, the worker's locations, and removes the
# client's X-Chatgate-* headers in every location where it runs. Here a
# capture server stands in for the upstream and records each request head.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Chatgate::Test;

my $port = Chatgate::Test::free_port();
my $capture = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
    Listen => 8, ReuseAddr => 1) or die "listen on 127.0.0.1:$port failed: $!";

my $t = Chatgate::Test->new(server_conf => <<"CONF");
        location /direct/ {
            chatgate on;
            proxy_pass http://127.0.0.1:$port/;
        }

        location /worker/ {
            chatgate on;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$port/;
        }

        location /unchecked/ {
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$port/;
        }

        location /plain/ {
            proxy_pass http://127.0.0.1:$port/;
        }
CONF

# Sends a chat to $path with a forged X-Chatgate-Role. Returns the response
# and the request head that the capture server received.
sub captured_head {
    my ($path) = @_;
    return $t->captured_head($capture, sub {
        $t->chat(path => $path, headers => { 'X-Chatgate-Role' => 'admin' });
    });
}

my ($r, $head) = captured_head('/direct/v1/chat/completions');
is($r->{status}, 200, 'direct status');
like($head, qr{^POST /v1/chat/completions }, 'direct request line');
unlike($head, qr/^X-Chatgate-/mi, 'direct no chatgate headers');
like($head, qr/^Authorization: Bearer /mi, 'direct provider key sent');

($r, $head) = captured_head('/worker/v1/chat/completions');
is($r->{status}, 200, 'worker status');
like($head, qr/^X-Chatgate-Request-Id: [0-9a-f]{32}\r$/mi,
     'worker request id sent');
like($head, qr/^X-Chatgate-Client-Addr: 127\.0\.0\.1\r$/mi,
     'worker client address sent');
unlike($head, qr/^X-Chatgate-Role:/mi, 'worker client role removed');

($r, $head) = captured_head('/unchecked/v1/chat/completions');
is($r->{status}, 200, 'unchecked status');
unlike($head, qr/^X-Chatgate-/mi, 'unchecked client role removed');
like($head, qr/^Authorization: Bearer /mi, 'unchecked provider key sent');

# Without the module nginx passes every client header on, so the capture
# sees a forged role: the locations above did remove it.
($r, $head) = captured_head('/plain/v1/chat/completions');
is($r->{status}, 200, 'plain status');
like($head, qr/^X-Chatgate-Role: admin\r$/mi, 'plain client role passed');

$t->finish();
