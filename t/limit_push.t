#!/usr/bin/perl

# Rule pushes: a push takes effect at once, a bad line rejects the whole
# push, usage raises today's counts, and burst then sustain works as GCRA.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(strftime);
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(sleep time);

use ChatgateNginx;

# a stored key id counts only with a credential, here the admin token
my $admin_token = 'admin-token-' . ('p' x 24);
my $secrets = tempdir('chatgate-secrets-XXXXXX', TMPDIR => 1, CLEANUP => 1);
write_file("$secrets/admin_token", "$admin_token\n");

my $port = free_port();
my $control = free_port();

my $nginx = start_nginx(ports => [$port, $control],
                        http => limit_http(port => $port, control => $control,
                                           extra => 'chatgate_default_rule '
                                                    . 'global per_minute=2; '
                                                    . 'chatgate_admin_token_file '
                                                    . "$secrets/admin_token;"));

sub get {
    my (@headers) = @_;
    return http_request(port => $port, path => '/', headers => \@headers);
}

sub statuses {
    my ($n, @headers) = @_;
    return join ' ', map { get(@headers)->{status} } 1 .. $n;
}

# the default rule applies before the first push

is(statuses(3), '200 200 429', 'push default rule before first push');

my $r = control_get($control);
like($r->{body}, qr/^rule global 2 - - -$/m, 'push default rule reported');

# a new rule keeps the requests already made: 2 of 4 are left

is(control_put($control, "rule global 4 - - -\n")->{status}, 200,
   'push rule change accepted');
is(statuses(3), '200 200 429', 'push rule change keeps requests made');

# a push takes effect for the next request

$r = control_put($control, "# comment\n\nrule global 6000 - 1000 -\n");
is($r->{status}, 200, 'push accepted');
like($r->{body}, qr/^ok 1 rules 0 usage$/, 'push answer counts lines');
is(get()->{status}, 200, 'push takes effect immediately');

# any bad line rejects the whole push and keeps the old rules

my @bad = (
    "rule global 10 - - -\nrule nowhere 1 - - -\n",
    "rule global ten - - -\n",
    "rule global 0 - - -\n",
    "rule global 1 - -\n",
    "rule ip:300.1.1.1 1 - - -\n",
    "rule ip:10.0.0.0/40 1 - - -\n",
    "rule key:not-a-uuid 1 - - -\n",
    "rule ip:::ffff:192.0.2.7 1 - - -\n",
    "rule ip:::FFFF:c000:207 1 - - -\n",
    "rule ip:::ffff:192.0.2.0/120 1 - - -\n",
    "rule ip:::ffff:0:0/96 1 - - -\n",
    "rule global 1 - - -\nrule global 2 - - -\n",
    "usage 2024-02-30 global 5\n",
    "usage today global 5\n",
    "usage 2024-01-01 ip:* 5\n",
    "usage 2024-01-01 global many\n",
    "limit global 1 - - -\n",
);

for my $body (@bad) {
    $r = control_put($control, "rule global 1 - - -\n$body");
    my $name = (split /\n/, $body)[-1];
    is($r->{status}, 400, "push rejected: $name");
    like($r->{body}, qr/^\{"error":\{"message":"line \d+: /,
         "push rejection names the line: $name");
}

$r = control_put($control, "rule ip:::ffff:192.0.2.7 1 - - -\n");
like($r->{body}, qr/line 1: invalid scope \\"ip:::ffff:192\.0\.2\.7\\": an IPv4-mapped/,
     'push mapped address error names scope');

is(control_put($control, "rule global 6000 - 1000 -\n"
                         . "rule ip:::/64 1 - - -\n")->{status},
   200, 'push ipv6 cidr below 96 bits accepted');
is(control_put($control, "rule global 6000 - 1000 -\n")->{status}, 200,
   'push restores rules');

is(get()->{status}, 200, 'push rejected keeps old rules');
like(control_get($control)->{body}, qr/^rule global 6000 - 1000 -$/m,
     'push rejected old rules reported');

$r = http_request(port => $control, method => 'POST', path => '/control',
                  body => "rule global 1 - - -\n");
is($r->{status}, 405, 'push post not allowed');

# usage raises today's count, so the day quota counts what the worker saw

my $today = strftime('%Y-%m-%d', gmtime);
my $key = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';

$r = control_put($control, "rule key:* - - - 5\n"
                           . "usage $today key:$key 4\n"
                           . "usage 2001-01-01 key:$key 1000\n");
is($r->{status}, 200, 'push usage accepted');
is(statuses(2, ['X-Key-Id', $key],
                 ['X-Admin-Token', $admin_token]), '200 429', 'push usage counts today');
like(control_get($control)->{body}, qr/^usage $today key:$key 5$/m,
     'push usage reported');

# burst then sustain: 600 per minute is one request per 100 ms

control_put($control, "rule global 600 - 5 -\n");

# the requests made under 6000 per minute weigh ten times more now
sleep 0.5;

my $start = time;
is(statuses(6), '200 200 200 200 200 429', 'burst admits five at once');

sleep 0.25 - (time - $start) if time - $start < 0.25;
is(statuses(3), '200 200 429', 'sustain admits one per 100 ms');

# "30 per minute in bursts, 1200 per hour sustained"

control_put($control, "rule global 30 1200 - -\n");

# the last burst left up to 5 requests of debt, 0.5 s at 600 per minute
sleep 0.6;
is(statuses(31), join(' ', ('200') x 30, '429'), 'burst 30 per minute');
like(control_get($control)->{body}, qr/^rule global 30 1200 - -$/m,
     'hourly sustain rule reported');

# a push logs at notice only when the rule set changes

sub push_log_levels {
    return join ' ', error_log($nginx)
        =~ /\[(\w+)\] .*chatgate rule push applied: 1 rules \((\w+)\)/g;
}

my $before = push_log_levels();
control_put($control, "rule global 30 1200 - -\n");
control_put($control, "rule global 30 1200 - -\nusage $today global 1\n");
control_put($control, "rule global 31 1200 - -\n");
my $added = substr(push_log_levels(), length $before);
is($added, ' info unchanged info unchanged notice changed',
   'push log level follows change');

is_deeply([error_log_alerts($nginx)], [], 'push no alerts');

done_testing();
