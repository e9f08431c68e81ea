#!/usr/bin/perl

# The limits admin API through nginx: list, create, update and delete
# rules; the 400s for bad scopes and bad bodies; 401 without a valid token.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use Chatgate::Test;

my $t = Chatgate::Test->new(seed_limits => 1);

sub rule_of {
    my ($list, $scope) = @_;
    my ($rule) = grep { $_->{scope} eq $scope } @{ $list->{rules} // [] };
    return $rule;
}

# list: the seeded global rule

my $r = $t->admin_via_nginx('GET', '/limits');
is($r->{status}, 200, 'limits list status');
my $global = rule_of($r->{json}, 'global');
ok($global, 'limits list has seeded global');
is($global->{per_minute}, 60, 'limits list global per_minute');
is($global->{per_day}, 5000, 'limits list global per_day');
ok(exists $global->{per_hour} && !defined $global->{per_hour},
   'limits list null per_hour');
like($r->{json}{usage}{day} // '', qr/^\d{4}-\d\d-\d\d$/, 'limits list usage day');
is(ref $r->{json}{usage}{counters}, 'ARRAY', 'limits list usage counters');

# create

$r = $t->admin_via_nginx('PUT', '/limits/ip:*',
    json => { scope => 'ip:*', per_minute => 60, per_hour => undef,
              burst => 10, per_day => 5000 });
is($r->{status}, 201, 'limits create status');
is($r->{json}{created}, JSON::PP::true, 'limits create created');
is($r->{json}{pushed}, JSON::PP::true, 'limits create pushed')
    or diag($r->{content});
is($r->{json}{rule}{burst}, 10, 'limits create burst');

my @rows = $t->query("SELECT * FROM rate_limits WHERE scope = 'ip:*'");
is($rows[0]{per_minute}, 60, 'limits create stored');

# create with a CIDR, an IPv6 address and a key, in canonical form

$r = $t->admin_via_nginx('PUT', '/limits/ip:10.0.0.0%2F8', json => { per_hour => 100 });
is($r->{status}, 201, 'limits create cidr');

$r = $t->admin_via_nginx('PUT', '/limits/ip:2001:DB8:0::1', json => { per_day => 7 });
is($r->{status}, 201, 'limits create ipv6');
is($r->{json}{rule}{scope}, 'ip:2001:db8::1', 'limits ipv6 canonical');

$r = $t->admin_via_nginx('PUT', '/limits/ip:192.0.2.1%2F32', json => { per_day => 7 });
is($r->{json}{rule}{scope}, 'ip:192.0.2.1', 'limits full prefix dropped');

$r = $t->admin_via_nginx('PUT', '/limits/key:0B9A6E1C-3F0E-4A5B-9C1D-2E3F4A5B6C7D',
    json => { per_minute => 5, burst => 0 });
is($r->{status}, 201, 'limits create key');
is($r->{json}{rule}{scope}, 'key:0b9a6e1c-3f0e-4a5b-9c1d-2e3f4a5b6c7d',
   'limits key lowercased');
is($r->{json}{rule}{burst}, 1, 'limits burst 0 stored as 1');

# update

$r = $t->admin_via_nginx('PUT', '/limits/global', json => { per_minute => 120 });
is($r->{status}, 200, 'limits update status');
is($r->{json}{created}, JSON::PP::false, 'limits update not created');
$r = $t->admin_via_nginx('GET', '/limits');
$global = rule_of($r->{json}, 'global');
is($global->{per_minute}, 120, 'limits update listed');
ok(!defined $global->{per_day}, 'limits update replaces whole rule');

# delete

$r = $t->admin_via_nginx('DELETE', '/limits/ip:10.0.0.0%2F8');
is($r->{status}, 200, 'limits delete status');
is($r->{json}{deleted}, 'ip:10.0.0.0/8', 'limits delete names scope');
$r = $t->admin_via_nginx('DELETE', '/limits/ip:10.0.0.0%2F8');
is($r->{status}, 404, 'limits delete missing');
$r = $t->admin_via_nginx('GET', '/limits');
ok(!rule_of($r->{json}, 'ip:10.0.0.0/8'), 'limits delete gone from list');

# bad scopes

my @bad_scopes = (
    [ 'nowhere', 'invalid scope' ],
    [ 'ip:300.1.1.1', 'invalid address' ],
    [ 'ip:10.0.0.0%2F33', 'invalid prefix' ],
    [ 'ip:10.0.0.1%2F8', 'bits set' ],
    [ 'ip:10.0.0.0%2F', 'invalid prefix' ],
    [ 'ip:2001:db8::%2F129', 'invalid prefix' ],
    [ 'key:not-a-uuid', 'invalid scope' ],
    [ 'key:0b9a6e1c-3f0e-4a5b-9c1d-2e3f4a5b6c7g', 'invalid key id' ],
    [ 'GLOBAL', 'invalid scope' ],
);

for my $case (@bad_scopes) {
    my ($scope, $reason) = @$case;
    $r = $t->admin_via_nginx('PUT', "/limits/$scope", json => { per_minute => 1 });
    is($r->{status}, 400, "limits bad scope $scope");
    like($r->{json}{error}{message} // '', qr/\Q$reason\E/,
         "limits bad scope $scope reason");
}

# bad bodies

my @bad_bodies = (
    [ { per_minute => -1 }, 'invalid per_minute -1' ],
    [ { per_minute => 0 }, 'invalid per_minute 0' ],
    [ { per_minute => 1000001 }, 'invalid per_minute' ],
    [ { per_hour => 100000001 }, 'invalid per_hour' ],
    [ { per_day => 1000000001 }, 'invalid per_day' ],
    [ { per_minute => 10, burst => -1 }, 'invalid burst' ],
    [ { per_minute => 10, burst => 1000001 }, 'invalid burst' ],
    [ { per_minute => 10, rate => 5 }, 'unknown field "rate"' ],
    [ { per_minute => '10' }, 'not a JSON string' ],
    [ { per_minute => JSON::PP::true }, 'not a JSON boolean' ],
    [ { per_minute => [1] }, 'not a JSON array' ],
    [ { per_minute => 1.5 }, 'invalid per_minute 1.5' ],
    [ { per_hour => undef }, 'sets no limit' ],
    [ {}, 'sets no limit' ],
    [ { per_day => 10, burst => 5 }, 'burst applies to' ],
    [ { scope => 'ip:*', per_minute => 1 }, 'must be the scope' ],
);

for my $case (@bad_bodies) {
    my ($body, $reason) = @$case;
    $r = $t->admin_via_nginx('PUT', '/limits/global', json => $body);
    is($r->{status}, 400, "limits bad body: $reason");
    like($r->{json}{error}{message} // '', qr/\Q$reason\E/,
         "limits bad body reason: $reason");
}

$r = $t->admin_via_nginx('PUT', '/limits/global', body => '{"per_minute": 1e30}');
is($r->{status}, 400, 'limits absurd number');
$r = $t->admin_via_nginx('PUT', '/limits/global', body => 'per_minute=5');
is($r->{status}, 400, 'limits not json');
like($r->{json}{error}{message} // '', qr/not valid JSON/, 'limits not json reason');
$r = $t->admin_via_nginx('PUT', '/limits/global', body => '[1, 2]');
like($r->{json}{error}{message} // '', qr/must be a JSON object/,
     'limits array body reason');

$global = rule_of($t->admin_via_nginx('GET', '/limits')->{json}, 'global');
is($global->{per_minute}, 120, 'limits bad requests change nothing');

# credentials

$r = $t->admin_via_nginx('GET', '/limits', token => undef);
is($r->{status}, 401, 'limits no token');
$r = $t->admin_via_nginx('PUT', '/limits/global', token => 'x' x 48,
    json => { per_minute => 1 });
is($r->{status}, 401, 'limits wrong token');
$r = $t->admin_via_nginx('DELETE', '/limits/global',
    token => substr($t->admin_token, 0, -1) . 'z');
is($r->{status}, 401, 'limits token one byte off');
is(rule_of($t->admin_via_nginx('GET', '/limits')->{json}, 'global')->{per_minute}, 120,
   'limits unauthorized change nothing');

# deleting global is allowed: no global limit

$r = $t->admin_via_nginx('DELETE', '/limits/global');
is($r->{status}, 200, 'limits delete global');

# no secret in the logs

is_deeply([ $t->logs_containing($t->admin_token, qw(worker error access)) ],
          [], 'admin token not in logs');

$t->finish;
