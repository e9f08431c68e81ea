#!/usr/bin/perl

# Client tokens on a chat location: the JWT is verified, removed before
# the upstream, selects the stored key and its "key:" limit scope; a
# credential that looks like a JWT is never forwarded, valid or not.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;

use ChatgateNginx;

my $secret = 'client-secret-' . ('c' x 32);
my $key = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';

my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/jwt", "$secret\n");

my $port = free_port();
my $control = free_port();
my $echo = free_port();

start_echo_server($echo);

my $nginx = start_nginx(ports => [$port, $control], http => <<"CONF");
    chatgate_zone cg 1m;
    chatgate_jwt_secret_file $secrets/jwt;

    server {
        listen 127.0.0.1:$port;

        location /v1/ {
            chatgate on;
            chatgate_limit_zone cg;
            chatgate_retry_jitter 0;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location /nosecret/ {
            chatgate on;
            chatgate_jwt_secret_file $secrets/jwt;
            chatgate_limit_zone cg;
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

sub chat {
    my (@headers) = @_;
    return http_request(port => $port, method => 'POST',
                        path => '/v1/chat/completions', body => '{}',
                        headers => \@headers);
}

sub client_jwt {
    my (%claims) = @_;
    return make_jwt($secret, { sub => 'app-1', role => 'client', key => $key,
                               jti => 'client-jti-default',
                               exp => time + 600, %claims });
}

my $token = client_jwt(models => ['gpt-4o-mini', 'llama3'],
                       jti => 'client-jti-1');

my $r = chat(['Authorization', "Bearer $token"], ['X-Key-Id', uc $key]);
is($r->{status}, 200, 'client token accepted');
unlike($r->{body}, qr/^Authorization:/mi, 'client token removed upstream');
unlike($r->{body}, qr/\Q$token\E/, 'client token not forwarded anywhere');
like($r->{body}, qr/^X-Chatgate-Key-Id: $key\r$/m, 'key id from claim');
is(() = $r->{body} =~ /^X-Chatgate-Key-Id:/mg, 1, 'key id header once');
like($r->{body}, qr/^X-Chatgate-Models: gpt-4o-mini,llama3\r$/m,
     'models forwarded');
like($r->{body}, qr/^X-Chatgate-Role: client\r$/m, 'client role forwarded');
like($r->{body}, qr/^X-Chatgate-Subject: app-1\r$/m, 'client sub forwarded');

$r = chat(['Authorization', "Bearer $token"],
          ['X-Key-Id', '00000000-0000-0000-0000-000000000001']);
is($r->{status}, 403, 'client token other key id rejected');
unlike($r->{body}, qr/^POST /m, 'client token other key id not forwarded');

$r = chat(['Authorization', 'Bearer ' . client_jwt(key => uc $key)]);
like($r->{body}, qr/^X-Chatgate-Key-Id: $key\r$/m, 'key claim lowercased');
unlike($r->{body}, qr/X-Chatgate-Models/, 'no models claim no header');

# BYOK credentials without a dot still pass through

$r = chat(['Authorization', 'Bearer sk-test-provider-key']);
is($r->{status}, 200, 'byok key accepted');
like($r->{body}, qr/^Authorization: Bearer sk-test-provider-key\r$/m,
     'byok key forwarded');

# anything that looks like a JWT and is not a valid client token: 401,
# and nothing reaches the upstream

my ($h64, $p64, $s64) = split /\./, $token;
my %bad = (
    'alg none' => make_jwt($secret, { role => 'client', key => $key,
                                      exp => time + 600 }, { alg => 'none' }),
    'other secret' => make_jwt('o' x 40, { role => 'client', key => $key,
                                           exp => time + 600 }),
    'expired' => client_jwt(exp => time - 3600),
    'no key claim' => make_jwt($secret, { role => 'client', jti => 'nk',
                                          exp => time + 600 }),
    'no jti' => make_jwt($secret, { role => 'client', key => $key,
                                    exp => time + 600 }),
    'key not a uuid' => client_jwt(key => 'prod-key'),
    'fourth segment' => "$token.$s64",
    'two segments' => "$h64.$p64",
    'sk with dot' => 'sk-proj.abc.def',
    'model with comma' => client_jwt(models => ['a,b']),
    'model with leading space' => client_jwt(models => ['llama3', ' a']),
    'model with trailing space' => client_jwt(models => ['a ', 'llama3']),
);

for my $name (sort keys %bad) {
    $r = chat(['Authorization', "Bearer $bad{$name}"]);
    is($r->{status}, 401, "client $name rejected");
    like($r->{body}, qr/"type":"authentication_error"/, "client $name json");
    unlike($r->{body}, qr/^(POST|Authorization)/m,
           "client $name not forwarded");
}

$r = chat(['Authorization', $token]);
is($r->{status}, 401, 'client token without bearer rejected');

for my $role ('admin', 'viewer') {
    $r = chat(['Authorization', 'Bearer ' . client_jwt(role => $role)]);
    is($r->{status}, 403, "client role $role rejected");
}

# revocation applies to client tokens too

$r = http_request(port => $control, method => 'PATCH', path => '/control',
                  body => "revoke client-jti-1 " . (time + 600) . "\n");
is($r->{status}, 200, 'client revoke pushed');
is(chat(['Authorization', "Bearer $token"])->{status}, 401,
   'client token revoked rejected');

# the key claim selects the "key:<uuid>" limit scope

$r = control_put($control, "rule key:$key 2 - - -\nrule key:* 100 - - -\n");
is($r->{status}, 200, 'key rule pushed');

my $fresh = client_jwt(jti => 'client-jti-2');
my @codes = map { chat(['Authorization', "Bearer $fresh"])->{status} } 1 .. 3;
is("@codes", '200 200 429', 'client token limited by key scope');

$r = chat(['Authorization', "Bearer $fresh"]);
like($r->{body}, qr/"param":"key:$key"/, 'client limit names key scope');

is(chat(['Authorization', 'Bearer sk-another'])->{status}, 200,
   'byok not limited by key rule');

like(control_get($control)->{body}, qr/^usage \S+ key:$key 2$/m,
     'key scope counter reported');

my $log = error_log($nginx);
is(index($log, $token), -1, 'log has no client token');
is(index($log, $s64), -1, 'log has no signature');
is(scalar error_log_alerts($nginx), 0, 'no alerts');

done_testing();
