#!/usr/bin/perl

# Admin authentication at the edge: X-Admin-Token, Bearer JWTs and the
# session cookie, every forgery the verifier must reject, the role matrix,
# CSRF, revocation, basic auth in front and the login rate limit.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use Test::More;

use ChatgateNginx;

my $secret = 'jwt-secret-' . ('s' x 32);
my $token = 'admin-token-0123456789abcdef';

my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/jwt", "  $secret\n");
write_file("$secrets/token", "$token\n");
write_file("$secrets/htpasswd",
           `openssl passwd -apr1 -salt abcdefgh basic-pass` =~ s/^/ops:/r);

my $port = free_port();
my $control = free_port();
my $echo = free_port();

start_echo_server($echo);

my $nginx = start_nginx(ports => [$port, $control], http => <<"CONF");
    chatgate_zone cg 1m;

    server {
        listen 127.0.0.1:$port;

        chatgate_limit_zone cg;
        chatgate_admin_token_file $secrets/token;
        chatgate_jwt_secret_file $secrets/jwt;
        chatgate_retry_jitter 0;

        location /admin/api/limits {
            chatgate_admin on;
            chatgate_roles viewer operator admin;
            chatgate_roles_write operator admin;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location /admin/api/keys {
            chatgate_admin on;
            chatgate_roles admin;
            chatgate_roles_write admin;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location = /admin/api/login {
            chatgate_login_limit 3/m;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location /admin/ {
            auth_basic "chatgate admin";
            auth_basic_user_file $secrets/htpasswd;
            chatgate_admin on;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location /notoken/ {
            chatgate_admin on;
            chatgate_admin_token_file $secrets/token;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }
    }

    server {
        listen 127.0.0.1:$control;

        location /control {
            chatgate_control on;
            chatgate_limit_zone cg;
        }
    }
CONF

sub req {
    my ($method, $path, @headers) = @_;
    return http_request(port => $port, method => $method, path => $path,
                        headers => \@headers);
}

sub bearer {
    return ['Authorization', "Bearer $_[0]"];
}

my $jti_seq = 0;

sub jwt {
    my (%claims) = @_;
    $jti_seq++;
    return make_jwt($secret, { sub => 'u1', role => 'admin',
                               jti => "admin-jti-$$-$jti_seq",
                               exp => time + 600, %claims });
}

my $now = time;

# X-Admin-Token

my $r = req('GET', '/admin/api/limits', ['X-Admin-Token', $token]);
is($r->{status}, 200, 'admin token accepted');
like($r->{body}, qr/^X-Chatgate-Role: admin\r$/m, 'admin token role sent');
like($r->{body}, qr/^X-Chatgate-Subject: admin-token\r$/m,
     'admin token subject sent');

$r = req('GET', '/admin/api/limits', ['X-Admin-Token', "${token}x"]);
is($r->{status}, 401, 'admin token wrong rejected');
like($r->{body}, qr/"type":"authentication_error"/, 'admin token 401 json');

is(req('GET', '/admin/api/limits', ['X-Admin-Token', ''])->{status}, 401,
   'admin token empty rejected');
is(req('GET', '/admin/api/limits')->{status}, 401, 'credential missing');

# forged and broken tokens, all through real nginx

my $good = jwt();
my ($h64, $p64, $s64) = split /\./, $good;
my $sig = (split /\./, $good)[2];

my %forged = (
    'alg none' => make_jwt($secret, { role => 'admin', exp => $now + 600 },
                           { alg => 'none' }) =~ s/[^.]+$//r,
    'alg none with signature' =>
        make_jwt($secret, { role => 'admin', exp => $now + 600 },
                 { alg => 'none' }),
    'alg HS512 with HS256 signature' =>
        make_jwt($secret, { role => 'admin', exp => $now + 600 },
                 { alg => 'HS512' }),
    'alg RS256 with HS256 signature' =>
        make_jwt($secret, { role => 'admin', exp => $now + 600 },
                 { alg => 'RS256' }),
    'other secret' => make_jwt('x' x 40, { role => 'admin',
                                           exp => $now + 600 }),
    'expired' => jwt(exp => $now - 120),
    'nbf in future' => jwt(nbf => $now + 300),
    'no exp' => make_jwt($secret, { role => 'admin' }),
    'no jti' => make_jwt($secret, { sub => 'u1', role => 'admin',
                                    exp => $now + 600 }),
    'empty jti' => jwt(jti => ''),
    'byte 0x80' => "$h64.$p64\x80.$s64",
    'padding' => "$h64.$p64=.$s64",
    'missing segment' => "$h64.$p64",
    'fourth segment' => "$good.$s64",
    'empty' => '',
    'signature changed' => "$h64.$p64." . ($sig =~ tr/A-Za-z/B-ZAb-za/r),
);

for my $name (sort keys %forged) {
    $r = req('GET', '/admin/api/limits', bearer($forged{$name}));
    is($r->{status}, 401, "jwt $name rejected");
    like($r->{body}, qr/^\{"error":\{.*"type":"authentication_error"/,
         "jwt $name 401 json");
}

is(req('GET', '/admin/api/limits', bearer(jwt(exp => $now - 10)))->{status},
   200, 'jwt expired within leeway accepted');

is(req('GET', '/admin/api/limits', ['Authorization', $good])->{status}, 401,
   'authorization without bearer rejected');
is(req('GET', '/admin/api/limits', ['Authorization', ''])->{status}, 401,
   'authorization empty rejected');

# a 16 KB token: nginx's large_client_header_buffers (4 8k by default)
# answers first, with 400 and its own page

$r = req('GET', '/admin/api/limits', bearer('a' x 16384));
is($r->{status}, 400, 'jwt 16k rejected by nginx');

# a 7 KB token fits in nginx's buffer and is rejected by the verifier

$r = req('GET', '/admin/api/limits',
         bearer(jwt(sub => 'x' x 5000)));
is($r->{status}, 200, 'jwt 7k accepted');
$r = req('GET', '/admin/api/limits', bearer('a' x 7000 . '.b.c'));
is($r->{status}, 401, 'jwt 7k garbage rejected');

# role matrix

my %matrix = (
    'viewer GET limits'   => ['viewer', 'GET', '/admin/api/limits', 200],
    'viewer PUT limits'   => ['viewer', 'PUT', '/admin/api/limits', 403],
    'operator PUT limits' => ['operator', 'PUT', '/admin/api/limits', 200],
    'operator GET keys'   => ['operator', 'GET', '/admin/api/keys', 403],
    'operator POST keys'  => ['operator', 'POST', '/admin/api/keys', 403],
    'admin PUT limits'    => ['admin', 'PUT', '/admin/api/limits', 200],
    'admin POST keys'     => ['admin', 'POST', '/admin/api/keys', 200],
    'client GET limits'   => ['client', 'GET', '/admin/api/limits', 403],
    'unknown GET limits'  => ['root', 'GET', '/admin/api/limits', 403],
);

for my $name (sort keys %matrix) {
    my ($role, $method, $path, $status) = @{ $matrix{$name} };
    $r = req($method, $path, bearer(jwt(role => $role, sub => "s-$role")));
    is($r->{status}, $status, "role $name");

    if ($status == 200) {
        like($r->{body}, qr/^X-Chatgate-Role: $role\r$/m,
             "role $name forwarded");
        like($r->{body}, qr/^X-Chatgate-Subject: s-$role\r$/m,
             "role $name subject forwarded");
    } else {
        like($r->{body}, qr/"type":"permission_error"/, "role $name 403 json");
    }
}

# a client cannot send its own role header

$r = req('GET', '/admin/api/limits', bearer(jwt(role => 'viewer')),
         ['X-Chatgate-Role', 'admin']);
unlike($r->{body}, qr/X-Chatgate-Role: admin/, 'client role header removed');

# the admin token may be kept off a location by its roles

is(req('PUT', '/admin/api/limits', ['X-Admin-Token', $token])->{status}, 200,
   'admin token may write');

# a header that changes lines must not come through a claim

$r = req('GET', '/admin/api/limits',
         bearer(jwt(sub => "x\r\nX-Chatgate-Role: admin", role => 'viewer')));
is($r->{status}, 401, 'jwt sub with newline rejected');

# the session cookie, and CSRF for state changes

my $cookie = ['Cookie', 'theme=dark; chatgate_session=' . jwt(role => 'operator')];

is(req('GET', '/admin/api/limits', $cookie)->{status}, 200,
   'cookie GET accepted');
$r = req('PUT', '/admin/api/limits', $cookie);
is($r->{status}, 403, 'cookie PUT without csrf header rejected');
like($r->{body}, qr/X-Chatgate-CSRF/, 'cookie csrf 403 names header');
is(req('PUT', '/admin/api/limits', $cookie, ['X-Chatgate-CSRF', '0'])
       ->{status}, 403, 'cookie PUT with csrf 0 rejected');
$r = req('PUT', '/admin/api/limits', $cookie, ['X-Chatgate-CSRF', '1']);
is($r->{status}, 200, 'cookie PUT with csrf header accepted');
unlike($r->{body}, qr/X-Chatgate-CSRF/i, 'csrf header not forwarded');
is(req('PUT', '/admin/api/limits', bearer(jwt(role => 'operator')))
       ->{status}, 200, 'bearer PUT needs no csrf header');
is(req('GET', '/admin/api/limits',
       ['Cookie', 'chatgate_session=' . $forged{expired}])->{status}, 401,
   'cookie expired rejected');

# revocation

my $jti = 'Q2hhdGdhdGUtanRpLTAx';
my $revocable = jwt(jti => $jti, role => 'viewer');

$r = req('GET', '/admin/api/limits', bearer($revocable));
is($r->{status}, 200, 'jwt before revoke accepted');
like($r->{body}, qr/^X-Chatgate-Jti: $jti\r$/m, 'jwt jti forwarded');

$r = http_request(port => $control, method => 'PATCH', path => '/control',
                  body => "revoke $jti " . ($now + 600) . "\n");
is($r->{status}, 200, 'revoke push accepted');
like($r->{body}, qr/^ok 1 revoked$/, 'revoke push counted');

is(req('GET', '/admin/api/limits', bearer($revocable))->{status}, 401,
   'jwt revoked rejected');
is(req('GET', '/admin/api/limits', ['Cookie', "chatgate_session=$revocable"])
       ->{status}, 401, 'jwt revoked cookie rejected');
is(req('GET', '/admin/api/limits', bearer(jwt(jti => 'other', role => 'viewer')))
       ->{status}, 200, 'jwt other jti accepted');

$r = http_request(port => $control, method => 'PATCH', path => '/control',
                  body => "rule global 1 - - -\n");
is($r->{status}, 400, 'revoke patch with rule rejected');

for my $bad ("revoke a.b 100\n", "revoke abc\n", "revoke abc soon\n",
             "revoke " . ('a' x 65) . " 100\n")
{
    $r = http_request(port => $control, method => 'PATCH', path => '/control',
                      body => $bad);
    is($r->{status}, 400, "revoke bad line rejected: " . substr($bad, 0, 20));
}

$r = control_put($control, "rule global 1000 - - -\nrevoke r2 "
                           . ($now + 600) . "\n");
like($r->{body}, qr/^ok 1 rules 0 usage 1 revoked$/, 'revoke in put counted');
is(req('GET', '/admin/api/limits', bearer(jwt(jti => 'r2')))->{status}, 401,
   'jwt revoked by put rejected');
is(req('GET', '/admin/api/limits', bearer($revocable))->{status}, 401,
   'put keeps earlier revocations');

# basic auth in front of /admin

my $basic = ['Authorization', 'Basic ' . encode_base64('ops:basic-pass', '')];
my $wrong = ['Authorization', 'Basic ' . encode_base64('ops:wrong', '')];

$r = req('GET', '/admin/console/', ['X-Admin-Token', $token]);
is($r->{status}, 401, 'basic auth required first');
like($r->{headers}{'www-authenticate'}[0] // '', qr/^Basic/,
     'basic auth answers with its challenge');
is(req('GET', '/admin/console/', $wrong, ['X-Admin-Token', $token])
       ->{status}, 401, 'basic auth wrong password rejected');
is(req('GET', '/admin/console/', $basic)->{status}, 401,
   'basic auth alone is not enough');
$r = req('GET', '/admin/console/', $basic, ['X-Admin-Token', $token]);
is($r->{status}, 200, 'basic auth and admin token accepted');
is(req('GET', '/admin/console/', $basic,
       ['Cookie', 'chatgate_session=' . jwt(role => 'viewer')])->{status},
   200, 'basic auth and cookie accepted');

# X-Admin-Token on a location that has no JWT secret

is(req('GET', '/notoken/x', bearer(jwt()))->{status}, 200,
   'jwt accepted where secret inherited');

# login rate limit per address: 3 per minute

my @codes = map {
    req('POST', '/admin/api/login', ['X-Real-IP', '192.0.2.1'])->{status}
} 1 .. 4;
is("@codes", '200 200 200 429', 'login limit per address');

$r = req('POST', '/admin/api/login');
like($r->{body}, qr/"code":"login"/, 'login limit 429 json');
ok($r->{headers}{'retry-after'}, 'login limit retry after');

# logs: info lines for the rejections, never a token

my $log = error_log($nginx);
like($log, qr/\[info\].*chatgate jwt rejected: alg is not HS256/,
     'log names alg reason');
like($log, qr/\[info\].*chatgate rejected credential: token has been revoked/,
     'log names revoked');
like($log, qr/\[info\].*chatgate denied access: role "viewer"/,
     'log names role');

my $leaks = 0;
for my $t ($token, $secret, $good, $p64, $s64, $revocable) {
    $leaks++ if index($log, $t) >= 0;
}
is($leaks, 0, 'logs contain no token');

is(scalar error_log_alerts($nginx), 0, 'no alerts');

done_testing();
