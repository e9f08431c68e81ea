#!/usr/bin/perl

# Configuration errors of the auth directives: "nginx -t" must reject
# each with a message that names the cause and never the secret.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;

use ChatgateNginx;

my $dir = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$dir/jwt", ('j' x 40) . "\n");
write_file("$dir/short-jwt", "short-jwt-secret-of-31-bytes-xx\n");
write_file("$dir/token", "token-of-16-char\n");
write_file("$dir/short-token", "  token-15-chars! \n");
write_file("$dir/control", "token-with\x01control-char\n");

my $port = free_port();

sub conf {
    my ($server, $location) = @_;
    return test_config(http => <<"CONF");
    chatgate_zone cg 1m;
    server {
        listen 127.0.0.1:$port;
        chatgate_limit_zone cg;
        $server
        location /admin/ {
            $location
        }
    }
CONF
}

my ($rc, $out) = conf("chatgate_jwt_secret_file $dir/jwt;",
                      'chatgate_admin on; chatgate_roles viewer;');
is($rc, 0, 'config valid') or diag $out;

($rc, $out) = conf("chatgate_admin_token_file $dir/token;",
                   'chatgate_admin on;');
is($rc, 0, 'config token of 16 characters valid') or diag $out;

my @cases = (
    ['jwt secret short', "chatgate_jwt_secret_file $dir/short-jwt;",
     'chatgate_admin on;', qr/is 31 bytes, the minimum is 32/],
    ['token short', "chatgate_admin_token_file $dir/short-token;",
     'chatgate_admin on;', qr/is 15 bytes, the minimum is 16/],
    ['token control char', "chatgate_admin_token_file $dir/control;",
     'chatgate_admin on;', qr/contains a control character/],
    ['secret file missing', "chatgate_jwt_secret_file $dir/none;",
     'chatgate_admin on;', qr/open\(\) ".*none" failed/],
    ['admin without secret', '', 'chatgate_admin on;',
     qr/"chatgate_admin" needs "chatgate_admin_token_file"/],
    ['role unknown', "chatgate_jwt_secret_file $dir/jwt;",
     'chatgate_admin on; chatgate_roles root;', qr/invalid role "root"/],
    ['role client', "chatgate_jwt_secret_file $dir/jwt;",
     'chatgate_admin on; chatgate_roles client;', qr/invalid role "client"/],
    ['leeway too long', "chatgate_jwt_secret_file $dir/jwt;",
     'chatgate_admin on; chatgate_jwt_leeway 10m;', qr/over the maximum/],
    ['satisfy any', "chatgate_jwt_secret_file $dir/jwt;",
     'chatgate_admin on; satisfy any;', qr/need "satisfy all"/],
    ['login rate invalid', '', 'chatgate_login_limit 10/s;',
     qr/invalid rate "10\/s"/],
    ['login burst invalid', '', 'chatgate_login_limit 10/m burst=x;',
     qr/invalid parameter "burst=x"/],
);

for my $case (@cases) {
    my ($name, $server, $location, $expect) = @$case;
    ($rc, $out) = conf($server, $location);
    isnt($rc, 0, "config $name rejected");
    like($out, $expect, "config $name message");
    unlike($out, qr/jjjjjjjj|short-jwt-secret|token-of-16|token-15-chars!/,
           "config $name hides secret");
}

($rc, $out) = test_config(http => <<"CONF");
    server {
        listen 127.0.0.1:$port;
        location /admin/ {
            chatgate_admin on;
            chatgate_jwt_secret_file $dir/jwt;
        }
    }
CONF
isnt($rc, 0, 'config jwt without zone rejected');
like($out, qr/need "chatgate_limit_zone"/, 'config jwt without zone message');

done_testing();
