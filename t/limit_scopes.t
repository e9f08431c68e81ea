#!/usr/bin/perl

# Limit scopes: global, ip:*, ip:<address>, ip:<CIDR> (IPv4 and IPv6),
# key:*, key:<uuid> and BYOK callers.  Each denial is a 429 with
# Retry-After, RateLimit headers and a JSON body, and the next window
# admits again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(sleep);

use ChatgateNginx;

# a stored key id counts only with a credential, here the admin token
my $admin_token = 'admin-token-' . ('s' x 24);
my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/admin_token", "$admin_token\n");

my $port = free_port();
my $control = free_port();

my $nginx = start_nginx(ports => [$port, $control], http => <<"CONF");
    chatgate_zone cg 1m;

    server {
        listen 127.0.0.1:$port;
        listen [::1]:$port;

        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;

        location / {
            chatgate on;
            chatgate_limit_zone cg;
            chatgate_retry_jitter 0;
            chatgate_admin_token_file $secrets/admin_token;
            root %%DIR%%;
            try_files /ok.txt =404;
            add_header X-Limit-Scope \$chatgate_limit_scope;
        }
    }

    server {
        listen 127.0.0.1:$control;

        location /control {
            chatgate_control on;
            chatgate_limit_zone cg;
            client_body_buffer_size 1m;
        }
    }
CONF

my $key_a = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';
my $key_b = '3f2504e0-4f89-11d3-9a0c-0305e82c3302';

sub get {
    my (%args) = @_;
    return http_request(port => $port, path => '/',
                        host => $args{host} // '127.0.0.1',
                        headers => $args{headers} // []);
}

sub push_rules {
    my ($rules) = @_;
    my $r = control_put($control, $rules);
    is($r->{status}, 200, "push accepted: " . (split /\n/, $rules)[0]);
}

# Sends $n requests and returns their statuses joined by spaces.
sub statuses {
    my ($n, %args) = @_;
    return join ' ', map { get(%args)->{status} } 1 .. $n;
}

sub denied_ok {
    my ($r, $scope, $window, $name) = @_;

    is($r->{status}, 429, "$name denied");
    like($r->{headers}{'retry-after'}[0] // '', qr/^[1-9]\d*$/,
         "$name retry after");
    like($r->{headers}{'content-type'}[0] // '', qr{^application/json},
         "$name json content type");
    like($r->{body}, qr/^\{"error":\{"message":"rate limit exceeded for scope/,
         "$name json message");
    like($r->{body}, qr/"type":"rate_limit_exceeded"/, "$name json type");
    like($r->{body}, qr/"param":"\Q$scope\E"/, "$name json scope");
    like($r->{body}, qr/"code":"$window"/, "$name json window");
    is($r->{headers}{'ratelimit-remaining'}[0], 0, "$name remaining zero");
}

# global: 120 per minute costs 0.5 s a request, burst 2

push_rules("rule global 120 - 2 -\n");

my $r = get();
is($r->{status}, 200, 'limit global first admitted');
is($r->{headers}{'ratelimit-limit'}[0], 2, 'limit global ratelimit limit');
is($r->{headers}{'ratelimit-remaining'}[0], 1,
   'limit global ratelimit remaining');
like($r->{headers}{'ratelimit-reset'}[0] // '', qr/^\d+$/,
     'limit global ratelimit reset');
is($r->{headers}{'x-limit-scope'}[0], 'global', 'limit global scope variable');

is(get()->{status}, 200, 'limit global second admitted');
denied_ok(get(), 'global', 'per_minute', 'limit global');

sleep 0.6;
is(get()->{status}, 200, 'limit global next window admits');

# ip:* counts each address on its own

push_rules("rule ip:* 120 - 2 -\n");

my @a1 = (headers => [['X-Real-IP', '10.0.0.1']]);
my @a2 = (headers => [['X-Real-IP', '10.0.0.2']]);

is(statuses(2, @a1), '200 200', 'limit ip any admits burst');
denied_ok(get(@a1), 'ip:10.0.0.1', 'per_minute', 'limit ip any');
is(get(@a2)->{status}, 200, 'limit ip any other address admitted');

sleep 0.6;
is(get(@a1)->{status}, 200, 'limit ip any next window admits');

# ip:<CIDR> replaces ip:* for its addresses and counts them together

push_rules("rule ip:* 120 - 2 -\nrule ip:10.9.0.0/16 120 - 4 -\n");

is(statuses(2, headers => [['X-Real-IP', '10.9.1.1']]), '200 200',
   'limit cidr first address');
is(statuses(2, headers => [['X-Real-IP', '10.9.2.2']]), '200 200',
   'limit cidr second address');
denied_ok(get(headers => [['X-Real-IP', '10.9.3.3']]), 'ip:10.9.0.0/16',
          'per_minute', 'limit ip cidr');
is(get(headers => [['X-Real-IP', '10.10.0.1']])->{status}, 200,
   'limit cidr outside address admitted');

# ip:<address> wins over a wider CIDR; a day quota of 0 blocks it

push_rules("rule ip:10.9.0.0/16 120 - 4 -\nrule ip:10.9.0.5 - - - 0\n");
denied_ok(get(headers => [['X-Real-IP', '10.9.0.5']]), 'ip:10.9.0.5',
          'per_day', 'limit ip address');

# IPv6: an exact address on [::1] and a CIDR through realip

push_rules("rule ip:0:0::1 120 - 2 -\nrule ip:2001:db8::/32 120 - 1 -\n");

is(statuses(2, host => '::1'), '200 200', 'limit ipv6 address admits burst');
denied_ok(get(host => '::1'), 'ip:::1', 'per_minute', 'limit ipv6 address');

is(get(headers => [['X-Real-IP', '2001:db8::5']])->{status}, 200,
   'limit ipv6 cidr first');
denied_ok(get(headers => [['X-Real-IP', '2001:db8:1::6']]), 'ip:2001:db8::/32',
          'per_minute', 'limit ipv6 cidr');

# X-Real-IP and X-Forwarded-For from an untrusted peer ([::1]) are ignored

push_rules("rule ip:* 120 - 2 -\n");

# the counter "ip:::1" is the one the IPv6 test above used up
sleep 1.1;

my $spoofed = join ' ', map {
    get(host => '::1', headers => [['X-Real-IP', "10.7.7.$_"],
                                   ['X-Forwarded-For', "10.8.8.$_"]])->{status}
} 1 .. 3;

is($spoofed, '200 200 429', 'limit untrusted forwarded headers ignored');

# key:* and key:<uuid>

push_rules("rule key:* 120 - 2 -\nrule key:$key_b 120 - 4 -\n");

my @ka = (headers => [['X-Key-Id', $key_a], ['X-Admin-Token', $admin_token]]);
my @kb = (headers => [['X-Key-Id', $key_b], ['X-Admin-Token', $admin_token]]);

is(statuses(2, @ka), '200 200', 'limit key any admits burst');
denied_ok(get(@ka), "key:$key_a", 'per_minute', 'limit key any');
is(statuses(4, @kb), '200 200 200 200', 'limit key rule replaces key any');
denied_ok(get(@kb), "key:$key_b", 'per_minute', 'limit key uuid');
is(get()->{status}, 200, 'limit key no key id not limited');

sleep 0.6;
is(get(@ka)->{status}, 200, 'limit key next window admits');

# BYOK callers are counted by a hash of their provider key

my @byok = (headers => [['Authorization', 'Bearer sk-test-provider-key']]);

is(statuses(2, @byok), '200 200', 'limit byok admits burst');
$r = get(@byok);
is($r->{status}, 429, 'limit byok denied');
like($r->{body}, qr/"param":"key:byok-[0-9a-f]{32}"/, 'limit byok hashed scope');
unlike($r->{body}, qr/sk-test/, 'limit byok key not in body');
is(get(headers => [['Authorization', 'Bearer sk-other-key']])->{status}, 200,
   'limit byok other key admitted');

# Without a key:* rule the provider key is not counted.  A key:* rule
# pushed again counts it under the same hashed scope: the day quota of 1
# denies it, because that counter has admitted 2 requests today.

push_rules("rule key:$key_b 120 - 4 -\n");
$r = get(@byok);
is($r->{status}, 200, 'limit byok without key any admitted');
is($r->{headers}{'x-limit-scope'}[0] // '', '',
   'limit byok without key any no key scope');

push_rules("rule key:* - - - 1\nrule key:$key_b 120 - 4 -\n");
$r = get(@byok);
is($r->{status}, 429, 'limit byok key any again denied');
like($r->{body}, qr/"param":"key:byok-[0-9a-f]{32}"/,
     'limit byok key any again hashed scope');

push_rules("rule key:* 120 - 2 -\nrule key:$key_b 120 - 4 -\n");

# denials per scope can be read back

$r = control_get($control);
is($r->{status}, 200, 'control get');
like($r->{body}, qr/^rule key:\* 120 - 2 -$/m, 'control get rules');
like($r->{body}, qr/^denied global [1-9]\d*$/m, 'control get global denials');
like($r->{body}, qr/^denied key:\Q$key_a\E [1-9]\d*$/m,
     'control get key denials');
like($r->{body}, qr/^usage \d{4}-\d\d-\d\d ip:10\.0\.0\.1 3$/m,
     'control get usage');
unlike(error_log($nginx), qr/sk-test/, 'limit byok key not logged');

is_deeply([error_log_alerts($nginx)], [], 'limit scopes no alerts');

done_testing();
