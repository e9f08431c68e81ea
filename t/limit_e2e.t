#!/usr/bin/perl

# Rules set through the admin API are enforced by nginx within a second,
# without a reload; day quotas survive an nginx restart because the worker
# pushes today's usage back; usage and denials reach chat_usage_counters and
# the admin API.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);

use Chatgate::Test;

my $t = Chatgate::Test->new(seed_limits => 1);

# Sends chats until one is denied, at most max; returns the statuses.
sub chats_until_429 {
    my ($max) = @_;
    my @statuses;

    for (1 .. $max) {
        my $r = $t->chat(content => 'limit');
        push @statuses, $r->{status};
        last if $r->{status} == 429;
    }
    return @statuses;
}

sub counter_row {
    my ($scope) = @_;
    my ($row) = $t->query("SELECT requests, denied FROM chat_usage_counters "
        . "WHERE day = (now() AT TIME ZONE 'UTC')::date AND scope = '$scope'");
    return $row;
}

# the worker pushed the seeded rules once nginx came up

ok($t->wait_for(sub { $t->control_report =~ /^rule global 60 - - 5000$/m }),
   'e2e seeded rules pushed at start');

# a tight global rule is enforced

my $r = $t->admin_via_nginx('PUT', '/limits/global', json => { per_minute => 3 });
is($r->{json}{pushed}, JSON::PP::true, 'e2e tight rule pushed')
    or diag($r->{content});

my @statuses = chats_until_429(10);
is("@statuses", '200 200 200 429', 'e2e tight rule admits 3');

$r = $t->chat(content => 'denied');
is($r->{status}, 429, 'e2e denied status');
is($r->{json}{error}{type}, 'rate_limit_exceeded', 'e2e denied error type');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'e2e denied retry-after');

# a higher limit admits again within a second, without a reload

$r = $t->admin_via_nginx('PUT', '/limits/global', json => { per_minute => 1000 });
my $changed = time;
is($r->{status}, 200, 'e2e raise limit status');

my $admitted;
while (time - $changed < 2) {
    $r = $t->chat(content => 'raised');
    if ($r->{status} == 200) {
        $admitted = time - $changed;
        last;
    }
    sleep 0.05;
}
ok(defined $admitted && $admitted < 1, 'e2e raised limit admits within 1 s')
    or diag('admitted after ' . ($admitted // 'never'));

# denials of the global counter reach the database and the API

ok($t->wait_for(sub { my $row = counter_row('global'); $row && $row->{denied} >= 2 }),
   'e2e global denials stored');

# deleting a rule lifts its limit

# the requests made under the last rule still count under the new one, so
# how many pass before the first 429 depends on the module's carry-over
$t->admin_via_nginx('PUT', '/limits/global', json => { per_minute => 1 });
@statuses = chats_until_429(5);
is($statuses[-1], 429, 'e2e one per minute denies');
$r = $t->admin_via_nginx('DELETE', '/limits/global');
is($r->{json}{pushed}, JSON::PP::true, 'e2e delete pushed');
is($t->chat(content => 'free')->{status}, 200, 'e2e deleted rule lifts limit');
unlike($t->control_report, qr/^rule global /m, 'e2e deleted rule gone at nginx');

# a day quota per address survives an nginx restart

$r = $t->admin_via_nginx('PUT', '/limits/ip:127.0.0.1', json => { per_day => 5 });
is($r->{status}, 201, 'e2e day quota rule created');

@statuses = map { $t->chat(content => "day $_")->{status} } 1 .. 3;
is("@statuses", '200 200 200', 'e2e day quota first 3 admitted');

ok($t->wait_for(sub { my $row = counter_row('ip:127.0.0.1'); $row && $row->{requests} == 3 }),
   'e2e day usage stored');

$t->restart_nginx();

ok($t->wait_for(sub {
        my $report = $t->control_report;
        $report =~ m{^rule ip:127\.0\.0\.1 - - - 5$}m
            && $report =~ m{^usage \S+ ip:127\.0\.0\.1 3$}m
    }, 10),
   'e2e rules and usage pushed after restart');

@statuses = chats_until_429(5);
is("@statuses", '200 200 429', 'e2e day quota continues after restart');

# usage and denials in the database and the admin API

ok($t->wait_for(sub {
        my $row = counter_row('ip:127.0.0.1');
        $row && $row->{requests} == 5 && $row->{denied} >= 1
    }),
   'e2e day usage and denial stored');

$r = $t->admin_via_nginx('GET', '/limits');
my ($counter) = grep { $_->{scope} eq 'ip:127.0.0.1' }
    @{ $r->{json}{usage}{counters} // [] };
is($counter->{requests}, 5, 'e2e api usage requests');
cmp_ok($counter->{denied} // 0, '>=', 1, 'e2e api usage denied');

$t->finish;
