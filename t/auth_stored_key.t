#!/usr/bin/perl

# A stored key named by X-Key-Id is used only with a credential that
# authorizes it: a client token whose key claim names it, or the admin
# token.  Key ids are not secrets, so X-Key-Id alone or next to a provider
# key is rejected before any counter is created.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;

use ChatgateNginx;

my $secret = 'client-secret-' . ('s' x 32);
my $admin_token = 'admin-token-' . ('a' x 24);
my $key = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';
my $other = '3f2504e0-4f89-11d3-9a0c-0305e82c3302';

my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/jwt", "$secret\n");
write_file("$secrets/admin_token", "$admin_token\n");

my $port = free_port();
my $control = free_port();
my $echo = free_port();

start_echo_server($echo);

my $nginx = start_nginx(ports => [$port, $control], http => <<"CONF");
    chatgate_zone cg 1m;

    server {
        listen 127.0.0.1:$port;

        chatgate_limit_zone cg;
        chatgate_retry_jitter 0;
        chatgate_jwt_secret_file $secrets/jwt;

        location /v1/ {
            chatgate on;
            chatgate_admin_token_file $secrets/admin_token;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo;
        }

        location /noadmin/ {
            chatgate on;
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
    my ($path, @headers) = @_;
    return http_request(port => $port, method => 'POST', path => $path,
                        body => '{}', headers => \@headers);
}

sub client_jwt {
    my (%claims) = @_;
    return make_jwt($secret, { sub => 'app-1', role => 'client', key => $key,
                               jti => 'stored-key-jti', exp => time + 600,
                               %claims });
}

sub key_counters {
    return [ control_get($control)->{body} =~ /^usage \S+ (key:\S+) \d+$/mg ];
}

is(control_put($control, "rule key:* 100 - - 1000\n")->{status}, 200,
   'stored key rule pushed');

# X-Key-Id without a credential that authorizes it

my %rejected = (
    'key id alone' => [['X-Key-Id', $key]],
    'key id with provider key' => [['X-Key-Id', $key],
                                   ['Authorization', 'Bearer sk-provider']],
    'key id with wrong admin token' => [['X-Key-Id', $key],
                                        ['X-Admin-Token', 'wrong-' . ('w' x 20)]],
    'key id with empty admin token' => [['X-Key-Id', $key],
                                        ['X-Admin-Token', '']],
);

for my $name (sort keys %rejected) {
    my $r = chat('/v1/chat/completions', @{ $rejected{$name} });
    is($r->{status}, 401, "stored key $name rejected");
    like($r->{body}, qr/"type":"authentication_error"/,
         "stored key $name json type");
    unlike($r->{body}, qr/^POST /m, "stored key $name not forwarded");
}

my $r = chat('/v1/chat/completions', ['X-Key-Id', $key]);
like($r->{body}, qr{client token from POST /admin/api/tokens},
     'stored key alone message names token endpoint');
like($r->{headers}{'content-type'}[0] // '', qr{^application/json},
     'stored key alone json content type');

$r = chat('/noadmin/chat', ['X-Key-Id', $key],
          ['X-Admin-Token', $admin_token]);
is($r->{status}, 401, 'stored key admin token without file rejected');

is_deeply(key_counters(), [], 'stored key rejected no counter');

# the admin token may test a stored key

$r = chat('/v1/chat/completions', ['X-Key-Id', uc $key],
          ['X-Admin-Token', $admin_token]);
is($r->{status}, 200, 'stored key admin token accepted');
like($r->{body}, qr/^X-Chatgate-Key-Id: $key\r$/m,
     'stored key admin token key id forwarded');
like($r->{body}, qr/^X-Chatgate-Role: admin\r$/m,
     'stored key admin token role forwarded');
like($r->{body}, qr/^X-Chatgate-Subject: admin-token\r$/m,
     'stored key admin token subject forwarded');

is_deeply(key_counters(), ["key:$key"], 'stored key admin token counted');

# a client token with X-Key-Id: it must name the token's own key

$r = chat('/v1/chat/completions', ['Authorization', 'Bearer ' . client_jwt()],
          ['X-Key-Id', $key]);
is($r->{status}, 200, 'stored key matching client token accepted');
is(() = $r->{body} =~ /^X-Chatgate-Key-Id: $key\r$/mg, 1,
   'stored key matching client token key id once');

$r = chat('/v1/chat/completions', ['Authorization', 'Bearer ' . client_jwt()],
          ['X-Key-Id', $other]);
is($r->{status}, 403, 'stored key other than claim rejected');
like($r->{body}, qr/"type":"permission_error"/,
     'stored key other than claim json type');
unlike($r->{body}, qr/^POST /m, 'stored key other than claim not forwarded');

is_deeply(key_counters(), ["key:$key"], 'stored key mismatch no counter');

# no key id: BYOK and plain requests are unchanged

is(chat('/v1/chat/completions', ['Authorization', 'Bearer sk-provider'])
       ->{status}, 200, 'stored key byok without key id passes');
is(chat('/noadmin/chat')->{status}, 200, 'stored key no credential passes');

my $log = error_log($nginx);
like($log, qr/X-Key-Id alone does not authorize a stored key/,
     'stored key rejection logged');
is(index($log, $admin_token), -1, 'log has no admin token');
is(scalar error_log_alerts($nginx), 0, 'no alerts');

done_testing();
