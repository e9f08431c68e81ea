#!/usr/bin/perl

# A full zone evicts the least recently used counters, logs it and keeps
# limiting; a flood of random key ids from one address cannot evict other
# clients' counters.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(time);

use ChatgateNginx;

# a stored key id counts only with a credential, here the admin token
my $admin_token = 'admin-token-' . ('z' x 24);
my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/admin_token", "$admin_token\n");

my $port = free_port();
my $control = free_port();

my $nginx = start_nginx(ports => [$port, $control], http => <<"CONF");
    chatgate_zone tiny 32k;
    chatgate_zone cg 1m new_keys=10;
    chatgate_default_rule ip:* per_minute=120 burst=2;

    server {
        listen 127.0.0.1:$port;

        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;

        chatgate on;
        chatgate_retry_jitter 0;
        chatgate_admin_token_file $secrets/admin_token;
        root %%DIR%%;

        location /tiny {
            chatgate_limit_zone tiny;
            try_files /ok.txt =404;
        }

        location / {
            chatgate_limit_zone cg;
            try_files /ok.txt =404;
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

sub get {
    my ($path, @headers) = @_;
    return http_request(port => $port, path => $path, headers => \@headers);
}

# 2000 addresses through a 32k zone, bounded to 30 s

my %statuses;
my $deadline = time + 30;
my $sent = 0;

for my $i (1 .. 2000) {
    last if time > $deadline;
    my $addr = sprintf '10.%d.%d.%d', $i >> 16, ($i >> 8) & 255, $i & 255;
    $statuses{ get('/tiny', ['X-Real-IP', $addr])->{status} }++;
    $sent++;
}

is($sent, 2000, 'zone flood sent every request');
is($statuses{200}, $sent, 'zone flood every new address admitted');
like(error_log($nginx), qr/chatgate zone "tiny" is full, evicted \d+ least/,
     'zone flood eviction logged');

my @recent = map { get('/tiny', ['X-Real-IP', '10.99.0.1'])->{status} } 1 .. 3;
is("@recent", '200 200 429', 'zone flood still limits');

# one client uses its key quota up

my $key = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';

is(control_put($control, "rule key:* - - - 2\nrule ip:* - - - 1000\n")
       ->{status}, 200, 'key flood push');

my @mine = map {
    get('/', ['X-Real-IP', '10.1.0.1'], ['X-Key-Id', $key],
        ['X-Admin-Token', $admin_token])->{status}
} 1 .. 3;
is("@mine", '200 200 429', 'key flood victim quota used');

# another address sends 300 random key ids: 10 new keys per minute pass

my %flood;

for my $i (1 .. 300) {
    my $random = sprintf '%08x-%04x-%04x-%04x-%012x', int(rand(2**32)),
                         $i, 0x4000, 0x8000, int(rand(2**32));
    my $r = get('/', ['X-Real-IP', '10.66.0.1'], ['X-Key-Id', $random],
                ['X-Admin-Token', $admin_token]);
    $flood{ $r->{status} }++;
    $flood{new_keys}++ if $r->{body} =~ /"code":"new_keys"/;
}

is($flood{200}, 10, 'key flood new keys capped per address');
is($flood{new_keys}, 290, 'key flood denied as new keys');

is(get('/', ['X-Real-IP', '10.1.0.1'], ['X-Key-Id', $key],
        ['X-Admin-Token', $admin_token])->{status}, 429,
   'key flood victim counter kept');

my $report = control_get($control)->{body};
like($report, qr/^usage \S+ key:\Q$key\E 2$/m, 'key flood victim usage kept');
like($report, qr/^denied ip:10\.66\.0\.1 290$/m,
     'key flood denials counted on address');

is_deeply([error_log_alerts($nginx)], [], 'zone no alerts');

done_testing();
