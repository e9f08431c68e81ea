#!/usr/bin/perl

# An admin body with a misspelled field must get a 400 that names it, as
# PUT /admin/api/limits does, and change nothing. Ignored, the misspelling
# fails open: "model" for "models" issues a client token for every model,
# "ttl" for "ttl_s" gives the default lifetime, "disable" for "disabled"
# leaves the user enabled, and "baseurl" for "base_url" sends the key to
# the provider's default host.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $password = 'unknown-fields-password';
my $key_id = $t->add_key(secret => 'sk-unknown-fields-' . ('k' x 16));

my $r = $t->admin('POST', '/users', json => {
    email => 'ops@example.com', role => 'operator', password => $password });
is($r->{status}, 201, 'user create status');
my $user_id = $r->{json} && $r->{json}{id};

sub count_rows {
    my ($table) = @_;
    my ($row) = $t->query("SELECT count(*) AS n FROM $table");
    return $row->{n};
}

my $tokens = count_rows('client_tokens');
my $users = count_rows('admin_users');
my $keys = count_rows('provider_keys');

# Each case: a name, the method and path, the body, and the field the
# 400 must name.
my @cases = (
    [ 'token models', 'POST', '/tokens',
      { key_id => $key_id, model => [ 'openai/gpt-4o-mini' ] }, 'model' ],
    [ 'token ttl', 'POST', '/tokens', { key_id => $key_id, ttl => 60 }, 'ttl' ],
    [ 'user disabled', 'PATCH', "/users/$user_id",
      { role => 'viewer', disable => JSON::PP::true }, 'disable' ],
    [ 'user create', 'POST', '/users',
      { email => 'new@example.com', role => 'viewer', password => $password,
        admin => JSON::PP::true }, 'admin' ],
    [ 'key create', 'POST', '/keys',
      { provider => 'openai', label => 'gateway', secret => 'sk-gateway-1',
        baseurl => 'http://127.0.0.1:1/v1' }, 'baseurl' ],
    [ 'key rotate', 'POST', "/keys/$key_id/rotate",
      { secret => 'sk-rotated-1', base_url => 'http://127.0.0.1:1/v1' },
      'base_url' ],
    [ 'login', 'POST', '/login',
      { email => 'ops@example.com', password => $password, remember => 1 },
      'remember' ],
);

for my $case (@cases) {
    my ($name, $method, $path, $body, $field) = @$case;

    $r = $t->admin($method, $path, json => $body);
    is($r->{status}, 400, "$name unknown field status");
    like($r->{json} && $r->{json}{error}{message} // '',
         qr/unknown field "\Q$field\E"/, "$name unknown field named");
}

is(count_rows('client_tokens'), $tokens, 'no client token issued');
is(count_rows('admin_users'), $users, 'no user created');
is(count_rows('provider_keys'), $keys, 'no key created');

my ($user) = $t->query("SELECT role, disabled FROM admin_users WHERE id = '$user_id'");
is($user->{role}, 'operator', 'user role unchanged');
ok(!$user->{disabled}, 'user still enabled');

my ($key) = $t->query("SELECT key_version FROM provider_keys WHERE id = '$key_id'");
is($key->{key_version}, 1, 'key not rotated');

# The same bodies with the documented names work.
$r = $t->admin('POST', '/tokens', json => {
    key_id => $key_id, models => [ 'openai/gpt-4o-mini' ], ttl_s => 60 });
is($r->{status}, 201, 'token with known fields status');

$r = $t->admin('PATCH', "/users/$user_id", json => { disabled => JSON::PP::true });
is($r->{status}, 200, 'user patch with known fields status');

$t->finish;
