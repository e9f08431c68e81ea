#!/usr/bin/perl

# Identity and hand-off: the request id, the client address and the key id
# reach the upstream in X-Chatgate-* headers, and no client-sent copy does.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;

use ChatgateNginx;

# a stored key id is forwarded only with a credential, here the admin token
my $admin_token = 'admin-token-' . ('i' x 24);
my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/admin_token", "$admin_token\n");

my $port = free_port();
my $echo_port = free_port();

start_echo_server($echo_port);

my $nginx = start_nginx(ports => [$port], http => <<"CONF");
    log_format ids '\$chatgate_request_id \$chatgate_client_addr \$status';

    server {
        listen 127.0.0.1:$port;
        access_log %%DIR%%/ids.log ids;

        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;

        location /chat {
            chatgate on;
            chatgate_admin_token_file $secrets/admin_token;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$echo_port;
        }

        location /plain {
            proxy_pass http://127.0.0.1:$echo_port;
        }

        location /id {
            return 200 "\$chatgate_request_id \$chatgate_request_id\\n";
        }
    }
CONF

sub echo {
    my (@headers) = @_;
    return http_request(port => $port, path => '/chat',
                        headers => \@headers);
}

sub forwarded {
    my ($r, $name) = @_;
    return [ $r->{body} =~ /^\Q$name\E: ([^\r\n]*)\r$/mgi ];
}

my $r = echo();
is($r->{status}, 200, 'identity plain request passes');

my $ids = forwarded($r, 'X-Chatgate-Request-Id');
is(scalar @$ids, 1, 'identity one request id forwarded');
like($ids->[0] // '', qr/^[0-9a-f]{32}$/, 'identity request id 32 hex');
is_deeply(forwarded($r, 'X-Chatgate-Client-Addr'), ['127.0.0.1'],
          'identity client addr forwarded');
is_deeply(forwarded($r, 'X-Chatgate-Key-Id'), [],
          'identity no key id without X-Key-Id');

my $second = forwarded(echo(), 'X-Chatgate-Request-Id');
isnt($second->[0], $ids->[0], 'identity request ids differ');

# client-sent copies, in mixed case and duplicated

$r = echo(['X-Chatgate-Request-Id', 'forged-id'],
          ['x-chatgate-request-id', 'forged-id-2'],
          ['X-CHATGATE-CLIENT-ADDR', '6.6.6.6'],
          ['x-ChatGate-Key-Id', '00000000-0000-0000-0000-000000000000'],
          ['X-Chatgate-Role', 'admin'],
          ['X-Chatgate-Role', 'admin'],
          ['X-Other', 'kept']);

is($r->{status}, 200, 'identity forged headers request passes');
unlike($r->{body}, qr/forged|6\.6\.6\.6|X-Chatgate-Role|0{8}-/i,
       'identity forged headers removed');
is(scalar @{ forwarded($r, 'X-Chatgate-Request-Id') }, 1,
   'identity forged request id replaced');
is(scalar @{ forwarded($r, 'X-Chatgate-Client-Addr') }, 1,
   'identity forged client addr replaced');
is_deeply(forwarded($r, 'X-Other'), ['kept'], 'identity other headers kept');

# forged headers and X-Key-Id past the first part of nginx's header list
# (20 entries), among headers that start with "X" and others

my @padding = map { ["X-Pad-$_", 'p'], ["Pad-$_", 'p'] } 1 .. 40;

$r = echo(@padding, ['X-CHATGATE-ROLE', 'admin'],
          ['X-Chatgate-Request-Id', 'forged-id'], ['X-Chatgate-', 'empty'],
          ['X-Chatgate', 'no-dash']);
is($r->{status}, 200, 'identity many headers request passes');
unlike($r->{body}, qr/forged|X-Chatgate-Role|^X-Chatgate-:/mi,
       'identity forged headers after many removed');
is_deeply(forwarded($r, 'X-Chatgate'), ['no-dash'],
          'identity header without the dash kept');
is(scalar @{ forwarded($r, 'X-Pad-40') }, 1, 'identity padding kept');

$r = echo(@padding, ['X-Key-Id', '3f2504e0-4f89-11d3-9a0c-0305e82c3301'],
          ['X-Admin-Token', $admin_token], ['x-chatgate-key-id', 'forged']);
is_deeply(forwarded($r, 'X-Chatgate-Key-Id'),
          ['3f2504e0-4f89-11d3-9a0c-0305e82c3301'],
          'identity key id after many headers forwarded');

$r = echo(['X-Key-Id', '3f2504e0-4f89-11d3-9a0c-0305e82c3301'], @padding,
          ['X-KEY-ID', '3f2504e0-4f89-11d3-9a0c-0305e82c3301']);
is($r->{status}, 400, 'identity key id repeated after many headers rejected');

$r = echo(['X-Key-Id', '3' x 4000]);
is($r->{status}, 400, 'identity very long key id rejected');

# key id

$r = echo(['X-Key-Id', '3F2504E0-4F89-11D3-9A0C-0305E82C3301'],
          ['X-Admin-Token', $admin_token]);
is($r->{status}, 200, 'identity key id accepted');
is_deeply(forwarded($r, 'X-Chatgate-Key-Id'),
          ['3f2504e0-4f89-11d3-9a0c-0305e82c3301'],
          'identity key id forwarded in lowercase');

for my $bad ('not-a-uuid',
             '3f2504e04f8911d39a0c0305e82c3301',
             '3f2504e0-4f89-11d3-9a0c-0305e82c33011',
             '3f2504e0-4f89-11d3-9a0c-0305e82c330g',
             '3f2504e0-4f8911d3-9a0c--0305e82c3301',
             '')
{
    $r = echo(['X-Key-Id', $bad]);
    is($r->{status}, 400, "identity bad key id '$bad' rejected");
}

like($r->{headers}{'content-type'}[0] // '', qr{^application/json},
     'identity bad key id json content type');
like($r->{body},
     qr/^\{"error":\{"message":"[^"]+","type":"invalid_request_error",
        "param":"X-Key-Id","code":null\}\}$/x,
     'identity bad key id json body');

$r = echo(['X-Key-Id', '3f2504e0-4f89-11d3-9a0c-0305e82c3301'],
          ['x-key-id', '3f2504e0-4f89-11d3-9a0c-0305e82c3302']);
is($r->{status}, 400, 'identity two key ids rejected');

# client address comes from realip, never from X-Forwarded-For

$r = echo(['X-Real-IP', '10.1.2.3'], ['X-Forwarded-For', '6.6.6.6']);
is_deeply(forwarded($r, 'X-Chatgate-Client-Addr'), ['10.1.2.3'],
          'identity client addr after realip');

# outside chatgate locations

$r = http_request(port => $port, path => '/plain',
                  headers => [['X-Chatgate-Role', 'admin']]);
is_deeply(forwarded($r, 'X-Chatgate-Role'), ['admin'],
          'identity disabled location untouched');

$r = http_request(port => $port, path => '/id');
like($r->{body}, qr/^([0-9a-f]{32}) \1$/,
     'identity request id variable fixed per request');

# the access log shows the id that the upstream saw

$r = echo();
my $seen = forwarded($r, 'X-Chatgate-Request-Id')->[0] // 'none';

my @log;
for (1 .. 20) {
    open my $f, '<', "$nginx->{dir}/ids.log" or last;
    @log = <$f>;
    last if grep { /^$seen / } @log;
    select undef, undef, undef, 0.05;
}

ok((grep { /^$seen 127\.0\.0\.1 200$/ } @log),
   'identity access log id equals upstream id');

is_deeply([error_log_alerts($nginx)], [], 'identity no alerts');

# Each process draws the random bytes of 256 ids at a time: ids stay
# distinct across two worker processes (reuseport spreads connections over
# both) and across refills.

my $multi_port = free_port();
my $multi = start_nginx(workers => 2, ports => [$multi_port], http => <<"CONF");
    server {
        listen 127.0.0.1:$multi_port reuseport;

        location / {
            chatgate on;
            return 200 "\$pid \$chatgate_request_id\\n";
        }
    }
CONF

my (%ids_seen, %pids, $malformed);

for (1 .. 600) {
    my $body = http_request(port => $multi_port, path => '/')->{body} // '';
    my ($pid, $id) = $body =~ /^(\d+) ([0-9a-f]{32})$/m;

    if (!defined $id) {
        $malformed++;
        next;
    }

    $pids{$pid}++;
    $ids_seen{$id}++;
}

is($malformed // 0, 0, 'identity workers ids well formed');
is(scalar keys %ids_seen, 600, 'identity workers ids distinct');
is(scalar keys %pids, 2, 'identity workers both served');
cmp_ok((sort { $b <=> $a } values %pids)[0], '>', 256,
       'identity workers one refilled');
is_deeply([error_log_alerts($multi)], [], 'identity workers no alerts');

stop_nginx($multi);

done_testing();
