#!/usr/bin/perl

# Errors that nginx itself produces in the server that includes
# conf.d/chatgate-server.conf, and in chatgate's locations, use the OpenAI
# error format with the status nginx chose: malformed requests sent over a
# raw socket, basic auth on /admin, unknown paths, an HTTPS port spoken to
# in plain HTTP. The module's own 401, 403 and 429 answers keep their
# bodies and headers.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Test::More;

use Chatgate::Test;
use ChatgateNginx qw(make_jwt);

# A self-signed certificate for a TLS listener of the same server.
my $certs = tempdir('chatgate-certs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-subj', '/CN=localhost', '-days', '1',
    '-keyout', "$certs/key.pem", '-out', "$certs/cert.pem") == 0
    or die "openssl req failed (status $?)\n";

my $tls_port = Chatgate::Test::free_port();

# The operator's own locations in the same server: one that inherits the
# server-level error pages, one that opts out with an error_page of its own.
my $t = Chatgate::Test->new(server_conf => <<"CONF");
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $certs/cert.pem;
        ssl_certificate_key $certs/key.pem;

        location = /operator/inherits {
            return 404;
        }

        location = /operator/own-pages {
            error_page 418 /teapot;
            return 404;
        }

        location = /operator/500 {
            return 500;
        }

        location = /operator/503 {
            return 503;
        }
CONF

my $port = $t->port;
my $chat = 'POST /v1/chat/completions HTTP/1.1';
my $key = 'Authorization: Bearer ' . $t->key;
my $basic = 'Authorization: ' . $t->basic_auth;
my $wrong_basic = 'Authorization: Basic '
    . encode_base64($t->basic_user . ':wrong-password', '');
my $long = 'a' x 9000;    # over large_client_header_buffers' 8k

# Checks that r is a JSON error of status with type and code.
sub error_is {
    my ($r, $status, $type, $code, $name) = @_;

    is($r->{status}, $status, "$name status");
    like($r->{headers}{'content-type'} // '', qr{^application/json\b},
        "$name content type");
    is(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH'
        ? $r->{json}{error}{type} : undef, $type, "$name error type")
        or diag($r->{raw} // $r->{content});
    is(ref $r->{json} eq 'HASH' ? $r->{json}{error}{code} : undef, $code,
        "$name error code");
    ok(ref $r->{json} eq 'HASH' && exists $r->{json}{error}{param}
        && !defined $r->{json}{error}{param}, "$name error param null");
    ok(ref $r->{json} eq 'HASH' && length($r->{json}{error}{message} // ''),
        "$name error message");
}

# Malformed requests that nginx rejects while it reads the request: each
# row is a name, the bytes, the status, the error type and the code.
my @malformed = (
    [ 'duplicate host',
      "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'duplicate authorization',
      "$chat\r\nHost: localhost\r\n$key\r\n$key\r\nContent-Length: 2\r\n\r\n{}",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'duplicate content-length',
      "$chat\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'content-length with transfer-encoding',
      "$chat\r\nHost: localhost\r\nContent-Length: 7\r\n"
          . "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'missing host',
      "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'invalid request line',
      "GET /healthz HTTP/1.1 extra\r\nHost: localhost\r\n\r\n",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'invalid chunked body',
      "$chat\r\nHost: localhost\r\n$key\r\nTransfer-Encoding: chunked\r\n\r\n"
          . "zz\r\n{}\r\n0\r\n\r\n",
      400, 'invalid_request_error', 'invalid_request' ],
    [ 'oversized header line',
      "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Long: $long\r\n\r\n",
      400, 'invalid_request_error', 'header_too_large' ],
    [ 'oversized uri',
      "GET /healthz?$long HTTP/1.1\r\nHost: localhost\r\n\r\n",
      414, 'invalid_request_error', 'uri_too_long' ],
    [ 'trace method',
      "TRACE /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      405, 'invalid_request_error', 'method_not_allowed' ],
    [ 'unknown transfer-encoding',
      "$chat\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n"
          . "Connection: close\r\n\r\n",
      501, 'invalid_request_error', 'not_implemented' ],
    [ 'http version 2 in a request line',
      "GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n",
      505, 'invalid_request_error', 'http_version_not_supported' ],
    [ 'declared body over the limit on an unknown path',
      "POST /nowhere HTTP/1.1\r\nHost: localhost\r\n"
          . "Content-Length: 2000000\r\nConnection: close\r\n\r\n",
      413, 'invalid_request_error', 'request_too_large' ],
);

for my $case (@malformed) {
    my ($name, $bytes, $status, $type, $code) = @$case;
    error_is($t->raw($bytes), $status, $type, $code, $name);
}

# nginx's own 404, 405, 500 and 503 in the server.

my $close = "Host: localhost\r\nConnection: close\r\n\r\n";

error_is($t->raw("GET /nowhere HTTP/1.1\r\n$close"),
    404, 'invalid_request_error', 'not_found', 'unknown path');
error_is($t->raw("DELETE /nowhere HTTP/1.1\r\n$close"),
    405, 'invalid_request_error', 'method_not_allowed', 'unknown path delete');
error_is($t->raw("GET /operator/inherits HTTP/1.1\r\n$close"),
    404, 'invalid_request_error', 'not_found', 'operator location inherits');
error_is($t->raw("GET /operator/500 HTTP/1.1\r\n$close"),
    500, 'server_error', 'internal_error', 'internal error');
error_is($t->raw("GET /operator/503 HTTP/1.1\r\n$close"),
    503, 'server_error', 'service_unavailable', 'service unavailable');

my $r = $t->raw("GET /operator/own-pages HTTP/1.1\r\n$close");
is($r->{status}, 404, 'operator own error_page status');
like($r->{headers}{'content-type'} // '', qr{^text/html\b},
    'operator own error_page keeps the html page');

# Plain HTTP on the TLS listener: nginx's 497, sent as 400.

my $tls = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tls_port", Timeout => 5)
    or die "connect to port $tls_port failed: $!\n";
print $tls "GET /healthz HTTP/1.1\r\n$close";
my $raw = do { local $/; <$tls> } // '';
close $tls;
my ($head, $body) = split /\r\n\r\n/, $raw, 2;
my $json = eval { JSON::PP->new->decode($body // '') };
like($head // '', qr{^HTTP/1\.1 400 }, 'plain http on tls port status');
like($head // '', qr{^Content-Type: application/json\r?$}mi,
    'plain http on tls port content type');
is(ref $json eq 'HASH' ? $json->{error}{code} : undef, 'https_required',
    'plain http on tls port error code');

# Basic auth on /admin: nginx's 401 keeps its challenge.

for my $case ([ 'no credentials', '' ], [ 'wrong password', "$wrong_basic\r\n" ]) {
    my ($what, $header) = @$case;

    for my $path ('/admin/api/limits', '/admin/api/keys', '/admin/api/login') {
        $r = $t->raw("GET $path HTTP/1.1\r\n$header$close");
        error_is($r, 401, 'authentication_error', 'basic_auth_failed',
            "basic auth $what on $path");
        like($r->{headers}{'www-authenticate'} // '',
            qr/^Basic realm="chatgate admin"/,
            "basic auth $what on $path challenge");
    }
}

# /admin/api without the slash: no 301 with nginx's HTML page, which a
# prefix location with proxy_pass would send for it.

for my $case ([ 'without credentials', '' ], [ 'with basic auth', "$basic\r\n" ]) {
    my ($what, $header) = @$case;

    $r = $t->raw("GET /admin/api HTTP/1.1\r\n$header$close");
    error_is($r, 404, 'invalid_request_error', 'not_found',
        "admin api without slash $what");
    ok(!exists $r->{headers}{location},
        "admin api without slash $what no redirect");
}

$r = $t->raw("GET /admin/console/ HTTP/1.1\r\n$basic\r\n$close");
error_is($r, 404, 'invalid_request_error', 'not_found', 'admin console path');

# auth_basic answers 403 while its htpasswd file is missing.

my $htpasswd = $t->dir . '/etc/htpasswd';
rename $htpasswd, "$htpasswd.away" or die "rename $htpasswd failed: $!\n";
$r = $t->raw("GET /admin/api/limits HTTP/1.1\r\n$basic\r\n$close");
rename "$htpasswd.away", $htpasswd or die "rename $htpasswd.away failed: $!\n";
error_is($r, 403, 'permission_error', 'forbidden', 'htpasswd file missing');

# The error pages themselves are internal.

$r = $t->raw("GET /_chatgate/error/400 HTTP/1.1\r\n$close");
error_is($r, 404, 'invalid_request_error', 'not_found', 'error page requested');

# The module's own answers are not nginx's pages: their bodies, codes and
# headers stay.

$r = $t->raw("$chat\r\nHost: localhost\r\nAuthorization: Bearer a.b.c\r\n"
    . "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
error_is($r, 401, 'authentication_error', 'invalid_token', 'module 401 chat');
unlike($r->{json}{error}{message} // '', qr/basic/i,
    'module 401 chat keeps its message');
is($r->{headers}{'www-authenticate'} // '', 'Bearer realm="chatgate"',
    'module 401 chat bearer challenge');

# The worker's own 401 (a chat without a provider key) carries the same
# challenge, as HTTP requires of every 401.

my $chat_body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}';
$r = $t->raw("$chat\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    . "Content-Length: " . length($chat_body) . "\r\nConnection: close\r\n\r\n"
    . $chat_body);
is($r->{status}, 401, 'worker 401 chat without key status');
is($r->{json}{error}{type}, 'authentication_error',
    'worker 401 chat without key error type');
is($r->{headers}{'www-authenticate'} // '', 'Bearer realm="chatgate"',
    'worker 401 chat without key bearer challenge');

$r = $t->raw("GET /admin/api/limits HTTP/1.1\r\n$basic\r\n"
    . "X-Admin-Token: wrong-token-0123456789\r\n$close");
error_is($r, 401, 'authentication_error', 'invalid_token', 'module 401 admin');
is($r->{headers}{'www-authenticate'} // '', 'Bearer realm="chatgate"',
    'module 401 admin bearer challenge, not basic');

my $viewer = make_jwt($t->jwt_secret, { sub => 'viewer-1', role => 'viewer',
    jti => 'viewer-jti-1', exp => time + 300 });
$r = $t->raw("$chat\r\nHost: localhost\r\nAuthorization: Bearer $viewer\r\n"
    . "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
is($r->{status}, 403, 'module 403 status');
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
    'module 403 content type');
is($r->{json}{error}{type}, 'permission_error', 'module 403 error type');
ok(exists $r->{json}{error}{code} && !defined $r->{json}{error}{code},
    'module 403 error code null');
like($r->{json}{error}{message} // '', qr/\brole\b/,
    'module 403 names the role');

$r = $t->admin_via_nginx('PUT', '/limits/global', json => { per_minute => 1 });
is($r->{status}, 200, 'tight global limit set') or diag($r->{content});

ok($t->wait_for(sub { $t->control_report =~ /^rule global 1 /m }),
    'tight global limit pushed');

my @statuses;
for (1 .. 3) {
    $r = $t->chat(content => 'limit');
    push @statuses, $r->{status};
    last if $r->{status} == 429;
}
is($r->{status}, 429, 'module 429 status') or diag("statuses: @statuses");
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
    'module 429 content type');
is($r->{json}{error}{type}, 'rate_limit_exceeded', 'module 429 error type');
is($r->{json}{error}{code}, 'per_minute', 'module 429 error code');
is($r->{json}{error}{param}, 'global', 'module 429 error param');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'module 429 retry-after');
is($r->{headers}{'ratelimit-limit'}, 1, 'module 429 ratelimit-limit');
is($r->{headers}{'ratelimit-remaining'}, 0, 'module 429 ratelimit-remaining');
like($r->{headers}{'ratelimit-reset'} // '', qr/^\d+$/,
    'module 429 ratelimit-reset');

$t->finish;
