#!/usr/bin/perl

# Edge authentication end to end, with the operator's drop-in configuration
# from conf.d: login through basic auth and the session cookie, CSRF and
# roles per admin area, the Bearer JWT where basic auth is off, logout
# revoking the session at the edge (also after an nginx restart), and
# client tokens for a stored key used by the openai SDK. No secret may show
# up in a log or a response.

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use Chatgate::Test;

my $sync_ms = 300;

# Without basic auth, for scripts on a trusted network, as the commented
# example in chatgate-admin.conf shows.
my $direct = <<'CONF';
        location /admin/api-direct/ {
            chatgate_admin on;
            include chatgate-auth.conf;
            chatgate_roles viewer operator admin;
            chatgate_roles_write admin;
            rewrite ^/admin/api-direct/(.*)$ /admin/api/$1 break;
            include chatgate-proxy.conf;
        }
CONF

my $t = Chatgate::Test->new(
    env => { CHATGATE_LIMITS_SYNC_MS => $sync_ms },
    server_conf => $direct,
);

my @responses;

sub keep {
    my ($r) = @_;
    my $h = $r->{headers} // {};
    push @responses, ($r->{content} // $r->{body} // '')
        . join("\n", map { "$_: " . (ref $h->{$_} ? "@{ $h->{$_} }" : $h->{$_}) } keys %$h);
    return $r;
}

# Sends a request through nginx with basic auth and, when given, the
# session cookie and the CSRF header.
sub console {
    my ($method, $path, %opt) = @_;
    my %headers = (Authorization => $t->basic_auth);

    $headers{Cookie} = "chatgate_session=$opt{cookie}" if $opt{cookie};
    $headers{'X-Chatgate-CSRF'} = '1' if $opt{csrf};
    return keep($t->request($method, "/admin/api$path", headers => \%headers,
        map { exists $opt{$_} ? ($_ => $opt{$_}) : () } qw(json body)));
}

sub session_cookie {
    my ($r) = @_;
    my $set = $r->{headers}{'set-cookie'} // '';
    $set = join "\n", @$set if ref $set;
    return $set =~ /chatgate_session=([^;\s]+)/ ? $1 : undef;
}

# Users, one per role, added with the worker's command line.

my %password;
for my $role (qw(admin operator viewer)) {
    $password{$role} = "pw-$role-" . join('', map { ('a'..'z')[rand 26] } 1 .. 20);
    my ($rc, $out) = $t->worker_command("$password{$role}\n", 'user', 'add',
        "$role\@example.com", '--role', $role);
    is($rc, 0, "user add $role") or diag($out);
}

# Login through nginx: basic auth, then the JSON login.

my $r = keep($t->request('POST', '/admin/api/login',
    json => { email => 'operator@example.com', password => $password{operator} }));
is($r->{status}, 401, 'login without basic auth');

my %cookie;
for my $role (qw(admin operator viewer)) {
    $r = console('POST', '/login',
        json => { email => "$role\@example.com", password => $password{$role} });
    is($r->{status}, 200, "login $role status");
    $cookie{$role} = session_cookie($r);
    ok($cookie{$role}, "login $role sets the session cookie");
    like($r->{headers}{'set-cookie'} // '', qr/HttpOnly/, "login $role cookie httponly");
}

$r = console('POST', '/login',
    json => { email => 'operator@example.com', password => 'wrong-password-1' });
is($r->{status}, 401, 'login wrong password');

# The cookie: reads need no CSRF header, changes do.

$r = console('GET', '/limits', cookie => $cookie{operator});
is($r->{status}, 200, 'cookie get limits');

$r = keep($t->request('GET', '/admin/api/limits',
    headers => { Cookie => "chatgate_session=$cookie{operator}" }));
is($r->{status}, 401, 'cookie without basic auth');

$r = console('PUT', '/limits/ip:192.0.2.1', cookie => $cookie{operator},
    json => { per_minute => 100 });
is($r->{status}, 403, 'cookie put without csrf');
is($r->{json} && $r->{json}{error}{type}, 'permission_error', 'cookie put without csrf type');

$r = console('PUT', '/limits/ip:192.0.2.1', cookie => $cookie{operator},
    csrf => 1, json => { per_minute => 100 });
like($r->{status}, qr/^20[01]$/, 'operator put limits with csrf');

$r = console('PUT', '/limits/ip:192.0.2.1', cookie => $cookie{viewer},
    csrf => 1, json => { per_minute => 50 });
is($r->{status}, 403, 'viewer put limits');

$r = console('GET', '/limits', cookie => $cookie{viewer});
is($r->{status}, 200, 'viewer get limits');

# Keys and users are for admins.

$r = console('GET', '/keys', cookie => $cookie{operator});
is($r->{status}, 403, 'operator get keys');
$r = console('GET', '/users', cookie => $cookie{operator});
is($r->{status}, 403, 'operator get users');
$r = console('GET', '/keys', cookie => $cookie{admin});
is($r->{status}, 200, 'admin get keys');

# Scripts: basic auth and X-Admin-Token.

$r = keep($t->admin_via_nginx('GET', '/keys'));
is($r->{status}, 200, 'admin token get keys');
$r = keep($t->admin_via_nginx('GET', '/keys', basic => 0));
is($r->{status}, 401, 'admin token without basic auth');

# Bearer JWT where basic auth is off.

my $bearer = sub { { Authorization => "Bearer $_[0]" } };
$r = keep($t->request('GET', '/admin/api-direct/limits',
    headers => $bearer->($cookie{operator})));
is($r->{status}, 200, 'bearer get limits');
$r = keep($t->request('PUT', '/admin/api-direct/limits/ip:192.0.2.1',
    headers => $bearer->($cookie{operator}), json => { per_minute => 10 }));
is($r->{status}, 403, 'bearer operator put outside limits area');
$r = keep($t->request('GET', '/admin/api-direct/limits'));
is($r->{status}, 401, 'bearer missing');

# Logout: the session ends at the edge at once, and after a restart.

$r = console('POST', '/logout', cookie => $cookie{operator}, csrf => 1);
is($r->{status}, 200, 'logout status');

$r = console('GET', '/limits', cookie => $cookie{operator});
is($r->{status}, 401, 'logout cookie rejected at once');
is($r->{json} && $r->{json}{error}{code}, 'invalid_token', 'logout cookie rejected code');
$r = keep($t->request('GET', '/admin/api-direct/limits',
    headers => $bearer->($cookie{operator})));
is($r->{status}, 401, 'logout bearer rejected');
ok($t->read_log('error') =~ /revoked/, 'logout rejection logged');

$r = console('GET', '/limits', cookie => $cookie{viewer});
is($r->{status}, 200, 'logout other session still valid');

$t->restart_nginx();
my $ok = $t->wait_for(sub {
    console('GET', '/limits', cookie => $cookie{operator})->{status} == 401
}, 5 * $sync_ms / 1000 + 2);
ok($ok, 'logout cookie rejected after nginx restart');
$r = keep($t->request('GET', '/admin/api-direct/limits',
    headers => $bearer->($cookie{operator})));
is($r->{status}, 401, 'logout bearer rejected after nginx restart');

# Client tokens for a stored key.

my $secret = 'sk-stored-e2e-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my $key_id = $t->add_key(secret => $secret, label => 'e2e');

$r = keep($t->admin_via_nginx('POST', '/tokens',
    json => { key_id => $key_id, models => [ 'openai/gpt-4o-mini' ] }));
is($r->{status}, 201, 'client token issued');
my $token = $r->{json} && $r->{json}{token};
ok($token, 'client token in response');

$r = console('POST', '/tokens', cookie => $cookie{viewer}, csrf => 1,
    json => { key_id => $key_id });
is($r->{status}, 403, 'client token viewer rejected');

my $before = () = $t->emulator_requests_with($t->sha256($secret));
$r = keep($t->chat(key => $token, content => 'client token chat'));
is($r->{status}, 200, 'client token chat status');
my $after = () = $t->emulator_requests_with($t->sha256($secret));
is($after - $before, 1, 'client token uses the stored key');
ok(!$t->emulator_requests_with($t->sha256($token)), 'client token not forwarded');

my $rid = $t->request_id($r->{tag});
my $row = $rid && $t->log_row($rid);
is($row && $row->{key_id}, $key_id, 'client token log row key_id');

$r = keep($t->chat(key => $token, model => 'openai/gpt-4o', content => 'other model'));
is($r->{status}, 403, 'client token other model status');
is($r->{json} && $r->{json}{error}{type}, 'permission_error', 'client token other model type');
ok(scalar $t->wait_log_lines('worker', qr/is not allowed for this client token/),
   'client token other model logged');

$r = keep($t->chat(key => $token, content => 'spoofed models',
    headers => { 'X-Chatgate-Models' => 'openai/gpt-4o', 'X-Key-Id' => $key_id }));
is($r->{status}, 200, 'client token spoofed headers ignored');

$r = keep($t->chat(key => $token, content => 'other key id',
    headers => { 'X-Key-Id' => '00000000-0000-4000-8000-000000000000' }));
is($r->{status}, 403, 'client token other key id status');
is($r->{json} && $r->{json}{error}{type}, 'permission_error',
   'client token other key id type');

# The openai SDK with the client token as its API key.

my $modules = $ENV{CHATGATE_NODE_MODULES} // '';
SKIP: {
    skip 'node or the openai package is missing: run scripts/test.sh', 4
        unless -f "$modules/openai/index.mjs" && system('node --version >/dev/null 2>&1') == 0;

    local $ENV{CHATGATE_URL} = $t->url;
    local $ENV{CHATGATE_TOKEN} = $token;
    local $ENV{CHATGATE_MODEL} = 'openai/gpt-4o-mini';
    local $ENV{CHATGATE_OTHER_MODEL} = 'openai/gpt-4o';
    my $out = `node t/node/openai_client_token.mjs 2>&1`;
    is($? >> 8, 0, 'sdk client token exit status') or diag($out);
    push @responses, $out;

    my %case;
    for (split /\n/, $out) {
        my $line = eval { decode_json($_) } or next;
        $case{ $line->{case} } = $line;
    }
    is($case{completion}{content}, 'emulator reply to: hello from a client token',
       'sdk client token reply');
    is($case{other_model}{status}, 403, 'sdk client token other model status');
    is($case{other_model}{type}, 'permission_error', 'sdk client token other model type');
}

# The key:<uuid> rule limits that client and no one else.

$r = keep($t->admin_via_nginx('PUT', "/limits/key:$key_id",
    json => { per_minute => 1, burst => 1 }));
like($r->{status}, qr/^20[01]$/, 'key rule put');

my @status = map { keep($t->chat(key => $token, content => "limited $_"))->{status} } 1 .. 3;
ok((grep { $_ == 429 } @status), 'key rule limits the client token') or diag("@status");
$r = keep($t->chat(content => 'byok is another scope'));
is($r->{status}, 200, 'key rule spares other clients');

$r = keep($t->admin_via_nginx('DELETE', "/limits/key:$key_id"));
is($r->{status}, 200, 'key rule delete');

# Forged, expired and revoked client tokens stop at the edge.

sub sign {
    my ($claims) = @_;
    my $head = encode_base64url('{"alg":"HS256","typ":"JWT"}');
    my $body = encode_base64url(JSON::PP->new->canonical->encode($claims));
    my $sig = encode_base64url(hmac_sha256("$head.$body", $t->jwt_secret));
    return "$head.$body.$sig";
}

my $now = time;
my %claims = (sub => "key:$key_id", role => 'client', key => $key_id,
    iat => $now, exp => $now + 600, jti => 'e2e-client-' . int(rand 1e9));

my ($h, $b, $s) = split /\./, $token;
substr($s, 5, 1) = substr($s, 5, 1) eq 'A' ? 'B' : 'A';
$r = keep($t->chat(key => "$h.$b.$s", content => 'forged client token'));
is($r->{status}, 401, 'client token forged signature');

$r = keep($t->chat(key => sign({ %claims, exp => $now - 3600 }), content => 'expired client token'));
is($r->{status}, 401, 'client token expired');

my $revoked = sign(\%claims);
$r = keep($t->chat(key => $revoked, content => 'before revoke'));
is($r->{status}, 200, 'client token valid before revoke');

$t->execute("INSERT INTO revoked_tokens (jti, expires_at) "
    . "VALUES ('$claims{jti}', to_timestamp($claims{exp}))");
$ok = $t->wait_for(sub {
    keep($t->chat(key => $revoked, content => 'after revoke'))->{status} == 401
}, 5 * $sync_ms / 1000 + 2);
ok($ok, 'client token revoked by the periodic push');

$r = keep($t->chat(key => $revoked, content => 'revoked client token'));
is($r->{status}, 401, 'client token revoked status');
for my $case ('forged', 'expired', 'revoked') {
    my @sent = $t->emulator_requests_with("$case client token");
    is(scalar @sent, 0, "$case client token not forwarded");
}

# No secret in any log or response.

my @logs = qw(worker error access emulator migrate commands nginx.stderr);
my %secrets = (
    'jwt secret'       => $t->jwt_secret,
    'admin token'      => $t->admin_token,
    'basic password'   => $t->basic_password,
    'stored key'       => $secret,
    map { ("$_ password" => $password{$_}) } keys %password,
);
for my $name (sort keys %secrets) {
    is_deeply([ $t->logs_containing($secrets{$name}, @logs) ], [],
              "$name not in logs");
    ok(!(grep { index($_, $secrets{$name}) >= 0 } @responses),
       "$name not in responses");
}

$t->finish;
