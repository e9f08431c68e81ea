#!/usr/bin/perl

# Configuration errors: a zone too small to be useful, a control location
# reachable from the network, bad default rules.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use ChatgateNginx;

my $port = free_port();

sub control_server {
    my ($listen) = @_;
    return <<"CONF";
    chatgate_zone cg 1m;

    server {
        $listen

        location /control {
            chatgate_control on;
            chatgate_limit_zone cg;
        }
    }
CONF
}

my ($rc, $out) = test_config(http => control_server(
    "listen 127.0.0.1:$port; listen [::1]:$port; listen unix:%%DIR%%/c.sock;"));
is($rc, 0, 'config control on loopback and unix accepted') or diag $out;

($rc, $out) = test_config(http => control_server("listen $port;"));
isnt($rc, 0, 'config control on wildcard rejected');
like($out, qr/"chatgate_control" is in a server that listens on "0\.0\.0\.0:$port"/,
     'config control on wildcard message');

($rc, $out) = test_config(http => control_server(
    "listen 127.0.0.1:$port; listen 127.0.0.2:$port;"));
isnt($rc, 0, 'config control on other loopback rejected');

($rc, $out) = test_config(http => control_server(''));
isnt($rc, 0, 'config control on default listen rejected');

($rc, $out) = test_config(http => <<"CONF");
    server {
        listen 127.0.0.1:$port;
        location /control { chatgate_control on; }
    }
CONF
isnt($rc, 0, 'config control without zone rejected');
like($out, qr/needs "chatgate_limit_zone"/, 'config control without zone message');

($rc, $out) = test_config(http => "chatgate_zone cg 16k;");
isnt($rc, 0, 'config small zone rejected');
like($out, qr/zone "cg" is too small: "16k"/, 'config small zone message');

($rc, $out) = test_config(http => "chatgate_zone cg lots;");
isnt($rc, 0, 'config bad zone size rejected');

for my $rule ('nowhere per_minute=1', 'global per_minute=0',
              'global per_week=5', 'ip:10.0.0.0/33 burst=1')
{
    ($rc, $out) = test_config(http => "chatgate_default_rule $rule;");
    isnt($rc, 0, "config default rule '$rule' rejected");
    like($out, qr/\[emerg\].*invalid/, "config default rule '$rule' message");
}

($rc, $out) = test_config(http => "chatgate_default_rule global per_minute=30 "
                                  . "per_hour=1200 burst=10 per_day=5000;");
is($rc, 0, 'config full default rule accepted') or diag $out;

done_testing();
