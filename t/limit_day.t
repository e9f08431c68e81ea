#!/usr/bin/perl

# Day quota: it resets at 00:00 UTC.  The test-only chatgate_clock_offset
# moves the limiter's clock to three seconds before midnight.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);

use ChatgateNginx;

my $port = free_port();
my $control = free_port();

my $now = time;
my $midnight = (int($now / 86400) + 1) * 86400;
my $offset = int($midnight - $now) - 3;

my $nginx = start_nginx(ports => [$port, $control],
                        http => limit_http(port => $port, control => $control,
                                           extra => "chatgate_clock_offset "
                                                    . "${offset}s;"));

# the real time at which the limiter's clock reads 00:00 UTC
my $crossing = $midnight - $offset;

sub get {
    return http_request(port => $port, path => '/');
}

is(control_put($control, "rule global - - - 3\n")->{status}, 200,
   'day quota push');

my @statuses = map { get()->{status} } 1 .. 3;
is("@statuses", '200 200 200', 'day quota admits quota');

my $r = get();
is($r->{status}, 429, 'day quota denies past quota');
like($r->{body}, qr/"code":"per_day"/, 'day quota window named');
cmp_ok($r->{headers}{'retry-after'}[0] // 0, '>=', 1,
       'day quota retry after at least 1 s');
cmp_ok($r->{headers}{'retry-after'}[0] // 99, '<=', 4,
       'day quota retry after until midnight');

# the limiter's clock crosses midnight 3 to 4 s after the offset was taken

my $wait = $crossing + 0.3 - time;
sleep $wait if $wait > 0;

$r = get();
is($r->{status}, 200, 'day quota resets at midnight');
is($r->{headers}{'ratelimit-remaining'}[0], 2,
   'day quota counts from zero');
cmp_ok($r->{headers}{'ratelimit-reset'}[0] // 0, '>', 86000,
       'day quota reset is the next midnight');

is_deeply([error_log_alerts($nginx)], [], 'day quota no alerts');

done_testing();
