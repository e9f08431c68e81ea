#!/usr/bin/perl

# Admin users and tokens on the worker's socket: the "user" commands, login
# (the same 401 for a wrong email and a wrong password), the session
# cookie, logout and the revoked list, the users API, client tokens,
# whoami, and the role matrix as the module would vouch for it.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use Time::HiRes qw(time);

my $t = Chatgate::Test->new();
$t->wait_keys_loaded;

my $password = 'correct horse ' . join('', map { ('a'..'z')[rand 26] } 1 .. 12);
my $password2 = 'second-pass-' . join('', map { ('a'..'z')[rand 26] } 1 .. 12);
my @responses;

sub keep { push @responses, $_[0]{body} // ''; $_[0] }

# The user command.

my ($rc, $out) = $t->worker_command("$password\n", 'user', 'add',
    'Ops@Example.com', '--role', 'admin');
is($rc, 0, 'user add exit status') or diag($out);
($rc, $out) = $t->worker_command("short\n", 'user', 'add', 'b@example.com',
    '--role', 'viewer');
is($rc, 2, 'user add short password rejected');
like($out, qr/12 to 1024 bytes/, 'user add short password message');
($rc) = $t->worker_command("$password\n", 'user', 'add', 'ops@example.com',
    '--role', 'admin');
is($rc, 1, 'user add duplicate email');
($rc) = $t->worker_command("$password\n", 'user', 'add', 'c@example.com',
    '--role', 'root');
is($rc, 2, 'user add invalid role');

my ($user) = $t->query("SELECT email, role, password_hash FROM admin_users");
is($user->{email}, 'ops@example.com', 'user add lowercases email');
like($user->{password_hash}, qr/^\$scrypt\$/, 'user add scrypt hash');

# Login.

my $start = time;
my $r = keep($t->admin_login('ops@example.com', $password));
my $ok_time = time - $start;
is($r->{status}, 200, 'login status');
is($r->{json}{role}, 'admin', 'login role');
my $token = $r->{json}{token} // '';
like($token, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'login token');
ok($r->{json}{expires_at} > time, 'login expires_at');
like($r->{headers}{'set-cookie'} // '',
    qr/^chatgate_session=\Q$token\E; HttpOnly; SameSite=Strict; Path=\/admin/,
    'login cookie');
unlike($r->{headers}{'set-cookie'} // '', qr/Secure/, 'login cookie not secure');
is($r->{headers}{'cache-control'}, 'no-store', 'login cache-control sent once');

$r = keep($t->admin_login('OPS@example.com', $password,
    headers => { 'X-Forwarded-Proto' => 'https' }));
like($r->{headers}{'set-cookie'} // '', qr/; Secure/, 'login cookie secure');

$start = time;
my $wrong_password = keep($t->admin_login('ops@example.com', 'wrong password 123'));
my $wrong_password_time = time - $start;
$start = time;
my $wrong_email = keep($t->admin_login('nobody@example.com', $password));
my $wrong_email_time = time - $start;

is($wrong_password->{status}, 401, 'login wrong password status');
is($wrong_email->{status}, 401, 'login wrong email status');
is($wrong_email->{body}, $wrong_password->{body}, 'login failures same body');
ok(!exists $wrong_email->{headers}{'set-cookie'}, 'login failure no cookie');
cmp_ok(abs($wrong_email_time - $wrong_password_time), '<',
    0.5 * $wrong_password_time + 0.05, 'login failures similar time')
    or diag("wrong email $wrong_email_time s, wrong password $wrong_password_time s");
is(keep($t->worker_request('POST', '/admin/api/login',
    json => { email => 'ops@example.com' }))->{status}, 400,
    'login missing password');

# A login does not block the event loop: a health check answers meanwhile.

$t->in_background('slow_login', sub {
    $t->admin_login('ops@example.com', $password)->{status};
});
$start = time;
my $health = $t->worker_request('GET', '/healthz');
cmp_ok(time - $start, '<', 0.05 + $ok_time / 2, 'login off the event loop')
    or diag("health took " . (time - $start) . " s, login $ok_time s");
$t->result('slow_login', 10);

# Users API and the role matrix.

$r = keep($t->admin('POST', '/users', json => {
    email => 'Viewer@Example.com', role => 'viewer', password => $password2 }));
is($r->{status}, 201, 'user create status');
my $viewer_id = $r->{json}{id};
is($r->{json}{email}, 'viewer@example.com', 'user create email');
ok(!exists $r->{json}{password_hash}, 'user create no hash');

$r = keep($t->admin('POST', '/users', json => {
    email => 'viewer@example.com', role => 'viewer', password => $password2 }));
is($r->{status}, 409, 'user create duplicate');
$r = keep($t->admin('POST', '/users', json => {
    email => 'x', role => 'boss', password => 'short' }));
is($r->{status}, 400, 'user create invalid');
like($r->{json}{error}{message}, qr/email:.*role:.*password:/,
    'user create invalid reasons');

$r = keep($t->admin('GET', '/users'));
is($r->{status}, 200, 'user list status');
is(scalar @{ $r->{json} // [] }, 2, 'user list count');
unlike($r->{body}, qr/scrypt/, 'user list no hashes');

is(keep($t->admin_login('viewer@example.com', $password2))->{status}, 200,
    'created user login');

$r = keep($t->admin('PATCH', "/users/$viewer_id", json => { role => 'operator' }));
is($r->{status}, 200, 'user patch status');
is($r->{json}{role}, 'operator', 'user patch role');
$r = keep($t->admin('PATCH', "/users/$viewer_id", json => { disabled => 'yes' }));
is($r->{status}, 400, 'user patch invalid');
is($t->admin('PATCH', '/users/00000000-0000-4000-8000-000000000000',
    json => { disabled => JSON::PP::true })->{status}, 404, 'user patch unknown');
$r = keep($t->admin('PATCH', "/users/$viewer_id",
    json => { disabled => JSON::PP::true }));
is($r->{json}{disabled}, JSON::PP::true, 'user patch disabled');
$r = keep($t->admin_login('viewer@example.com', $password2));
is($r->{status}, 401, 'disabled user login');
is($r->{body}, $wrong_password->{body}, 'disabled user same body');

($rc) = $t->worker_command('', 'user', 'disable', 'ops@example.com');
is($rc, 0, 'user disable exit status');
is(keep($t->admin_login('ops@example.com', $password))->{status}, 401,
    'user disable login');

my @matrix = (
    # method, path, least role
    [ 'GET',   '/admin/api/whoami',         'viewer' ],
    [ 'GET',   '/admin/api/users',          'admin' ],
    [ 'POST',  '/admin/api/users',          'admin' ],
    [ 'PATCH', "/admin/api/users/$viewer_id", 'admin' ],
    [ 'GET',   '/admin/api/keys',           'admin' ],
    [ 'POST',  '/admin/api/tokens',         'admin' ],
    [ 'GET',   '/admin/api/tokens',         'admin' ],
    [ 'GET',   '/admin/api/tokens?limit=1&state=all', 'admin' ],
    [ 'GET',   '/admin/api/tokens/revoked', 'admin' ],
);
my %rank = (viewer => 1, operator => 2, admin => 3);
for my $case (@matrix) {
    my ($method, $path, $least) = @$case;
    for my $role (qw(viewer operator admin)) {
        my $x = $t->worker_request($method, $path, role => $role,
            json => {});
        my $allowed = $rank{$role} >= $rank{$least};
        if ($allowed) {
            isnt($x->{status}, 403, "$method $path $role allowed");
        } else {
            is($x->{status}, 403, "$method $path $role forbidden");
        }
    }
    is($t->worker_request($method, $path, json => {})->{status}, 401,
        "$method $path no credential");
}
is($t->worker_request('GET', '/admin/api/whoami', role => 'client')->{status},
    401, 'whoami client role rejected');

$r = $t->worker_request('GET', '/admin/api/whoami', role => 'operator',
    headers => { 'X-Chatgate-Subject' => 'user-7' });
is_deeply($r->{json}, { subject => 'user-7', role => 'operator' }, 'whoami');

# Client tokens.

my $key_secret = 'sk-token-key-' . join('', map { ('a'..'z')[rand 26] } 1 .. 20);
my $key_id = $t->add_key(secret => $key_secret);
$r = keep($t->admin('POST', '/tokens', json => {
    key_id => $key_id, models => [ 'gpt-4o-mini' ], ttl_s => 600 }));
is($r->{status}, 201, 'client token status');
my ($payload) = ($r->{json}{token} // '') =~ /^[^.]+\.([^.]+)\./;
$payload =~ tr{-_}{+/};
$payload .= '=' x (-length($payload) % 4);
require MIME::Base64;
my $claims = eval { JSON::PP->new->decode(MIME::Base64::decode_base64($payload)) } // {};
is($claims->{role}, 'client', 'client token role');
is($claims->{key}, $key_id, 'client token key claim');
is_deeply($claims->{models}, [ 'gpt-4o-mini' ], 'client token models');
cmp_ok(abs($claims->{exp} - $claims->{iat} - 600), '<=', 1, 'client token ttl');
ok($claims->{jti}, 'client token jti');

$r = keep($t->admin('POST', '/tokens', json => {
    key_id => '00000000-0000-4000-8000-000000000000' }));
is($r->{status}, 400, 'client token unknown key');
$r = keep($t->admin('POST', '/tokens', json => {
    key_id => $key_id, models => [], ttl_s => 5 }));
is($r->{status}, 400, 'client token invalid models and ttl');
like($r->{json}{error}{message}, qr/models:.*ttl_s:/, 'client token reasons');

# nginx passes the models on in one comma-separated header and rejects a
# token whose names hold a comma or a control character, so such a token
# would never work. The worker drops the spaces around the header's value,
# so a name with a space at either end would match differently by position.

for my $bad ("gpt-4o,gpt-evil", "gpt\t4o", "gpt-4o\x7f", " gpt-4o",
    "gpt-4o ")
{
    (my $shown = $bad) =~ s/([^ -~])/sprintf('\\x%02x', ord $1)/ge;
    $r = keep($t->admin('POST', '/tokens', json => {
        key_id => $key_id, models => [ 'gpt-4o-mini', $bad ] }));
    is($r->{status}, 400, "client token model \"$shown\" rejected");
    like($r->{json}{error}{message} // '', qr/models:/,
        "client token model \"$shown\" reason");
}

# Logout revokes the session's jti.

($rc) = $t->worker_command("$password\n", 'user', 'add', 'ops2@example.com',
    '--role', 'operator');
$r = keep($t->admin_login('ops2@example.com', $password));
my $session = $r->{json}{token} // '';
my ($jti_payload) = $session =~ /^[^.]+\.([^.]+)\./;
$jti_payload =~ tr{-_}{+/};
$jti_payload .= '=' x (-length($jti_payload) % 4);
my $jti = eval { JSON::PP->new->decode(MIME::Base64::decode_base64($jti_payload))->{jti} } // '';

$r = keep($t->worker_request('POST', '/admin/api/logout',
    headers => { Cookie => "other=1; chatgate_session=$session" }));
is($r->{status}, 200, 'logout status');
like($r->{headers}{'set-cookie'} // '', qr/chatgate_session=;.*Max-Age=0/,
    'logout clears cookie');
$r = keep($t->admin('GET', '/tokens/revoked'));
ok((grep { $_->{jti} eq $jti } @{ $r->{json} // [] }), 'logout jti revoked');
is($t->worker_request('POST', '/admin/api/logout',
    headers => { Authorization => 'Bearer not.a.token' })->{status}, 401,
    'logout invalid token');

# No secret anywhere.

$t->stop;

my @logs = qw(error access worker migrate emulator commands nginx.stderr);
my $responses = join "\n", @responses;
for my $case ([ 'admin password', $password ], [ 'second password', $password2 ],
    [ 'jwt secret', $t->jwt_secret ], [ 'kms key', $t->kms_key ],
    [ 'admin token', $t->admin_token ], [ 'stored key', $key_secret ])
{
    my ($name, $s) = @$case;
    is(join(', ', $t->logs_containing($s, @logs)), '', "$name in no log");
    ok(index($responses, $s) < 0, "$name in no response");
    is(scalar $t->query("SELECT 1 FROM chat_logs c WHERE "
        . "strpos(row_to_json(c)::text, '$s') > 0"), 0,
        "$name in no chat_logs row");
}
is(join(', ', $t->logs_containing($token, @logs)), '', 'session token in no log');

$t->finish;
