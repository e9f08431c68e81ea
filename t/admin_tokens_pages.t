#!/usr/bin/perl

# Paging through GET /admin/api/tokens: a few hundred tokens, walked with
# several page sizes through X-Next-Cursor and through the Link header
# (also behind nginx), the state filters, the bounds and malformed values
# of limit, after and state, and the roles that may not list.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use MIME::Base64 qw(encode_base64);
use POSIX qw(strftime);

my $t = Chatgate::Test->new();
$t->wait_keys_loaded;

my $key_id = $t->add_key(secret => 'sk-pages-' . join('',
    map { ('a'..'z')[rand 26] } 1 .. 20));

# Tokens issued through the API, so real rows are in the list too.

my @issued;
for (1 .. 3) {
    my $r = $t->admin('POST', '/tokens', json => { key_id => $key_id });
    is($r->{status}, 201, 'token issued');
    push @issued, $r->{json}{jti} // '';
}

# Tokens inserted straight into the table: 360 of them, three per
# created_at (so jti breaks the ties) at microsecond offsets that a float
# of microseconds since the epoch would round. Every fifth is revoked, every
# seventh expired; the ones that are both count as revoked. The jti values
# are lowercase letters and digits of one length, whose order is the same
# in every collation, and their order within a tie differs from the
# insertion order.

my (@synthetic, @values);
my $base = 1735689600;    # 2025-01-01T00:00:00Z
for my $i (1 .. 360) {
    my $group = int($i / 3);
    my $sec = $base + $group * 17;
    my $us = ($group * 7919 + 999983) % 1000000;
    my $jti = sprintf('p%04d', ($i * 7919) % 1000);
    my $revoked = $i % 5 == 0;
    my $expired = $i % 7 == 0;
    my $created = strftime('%Y-%m-%d %H:%M:%S', gmtime $sec)
        . sprintf('.%06d+00', $us);

    push @synthetic, {
        jti   => $jti,
        us    => $sec * 1000000 + $us,
        state => $revoked ? 'revoked' : $expired ? 'expired' : 'active',
    };
    push @values, sprintf("('%s', '%s', '%s', '%s', %s)", $jti, $key_id,
        $created, $expired ? '2020-01-01 00:00:00+00' : '2100-01-01 00:00:00+00',
        $revoked ? "'2025-06-01 00:00:00+00'" : 'NULL');
}

# Two more in the year 9999, one microsecond apart, where a float of
# seconds since the epoch no longer holds every microsecond: a cursor
# rebuilt through one would repeat or skip a row.
my @late = ('z0001', 'z0000');
push @values,
    "('z0001', '$key_id', '9999-12-31 23:06:40.000001+00', '9999-12-31 23:59:59+00', NULL)",
    "('z0000', '$key_id', '9999-12-31 23:06:40.000002+00', '9999-12-31 23:59:59+00', NULL)";

$t->execute('INSERT INTO client_tokens (jti, key_id, created_at, expires_at, '
    . 'revoked_at) VALUES ' . join(', ', @values));

@synthetic = sort { $a->{us} <=> $b->{us} || $a->{jti} cmp $b->{jti} } @synthetic;
my @expected = ((map { $_->{jti} } @synthetic), @issued, @late);
my %state_of = ((map { $_->{jti} => $_->{state} } @synthetic),
    map { $_ => 'active' } @issued, @late);

my @db_order = map { $_->{jti} }
    $t->query('SELECT jti FROM client_tokens ORDER BY created_at, jti');
is_deeply(\@db_order, \@expected, 'expected order matches the database');

# Walks every page of the list from query (the first page's query string)
# with get, following X-Next-Cursor, or the Link header when by_link is set.
# Returns the jti values in the order seen and the page sizes.
sub walk {
    my ($name, $query, %opt) = @_;
    my $get = $opt{get} // sub { $t->admin('GET', "/tokens$_[0]") };
    my (@seen, @sizes);
    my $next = $query;

    for my $page (1 .. 2000) {
        my $r = $get->($next);
        if ($r->{status} != 200 || ref $r->{json} ne 'ARRAY') {
            fail("$name page $page status");
            diag("status $r->{status}: $r->{body}");
            last;
        }

        push @seen, map { $_->{jti} } @{ $r->{json} };
        push @sizes, scalar @{ $r->{json} };

        my $cursor = $r->{headers}{'x-next-cursor'};
        my $link = $r->{headers}{link};
        if (!defined $cursor) {
            ok(!defined $link, "$name last page without Link");
            last;
        }

        my ($ref) = ($link // '') =~ /^<(\?[^>]*)>; rel="next"$/;
        ok(defined $ref, "$name Link header form") or diag($link // 'no Link');
        like($ref // '', qr/[?&]after=\Q$cursor\E(&|$)/,
            "$name Link carries the cursor") if $page == 1;

        if ($opt{by_link}) {
            $next = $ref // '';
        } else {
            (my $rest = $query) =~ s/^\?//;
            $next = '?' . join('&', grep { length } $rest,
                "after=$cursor");
        }
    }

    return (\@seen, \@sizes);
}

my $total = scalar @expected;

for my $limit (1, 7, 100, 365, 1000) {
    my ($seen, $sizes) = walk("limit $limit", "?limit=$limit");
    is_deeply($seen, \@expected, "limit $limit every token once, in order");

    my $pages = int(($total + $limit - 1) / $limit);
    is(scalar @$sizes, $pages, "limit $limit page count");
    is(scalar(grep { $_ != $limit } @{$sizes}[0 .. $#$sizes - 1]), 0,
        "limit $limit full pages before the last");
}

my ($seen, $sizes) = walk('default limit', '');
is_deeply($seen, \@expected, 'default limit every token once, in order');
is($sizes->[0], 100, 'default limit is 100');

($seen) = walk('Link', '?limit=50', by_link => 1);
is_deeply($seen, \@expected, 'Link walk every token once, in order');

($seen) = walk('nginx', '?limit=64', by_link => 1, get => sub {
    $t->admin_via_nginx('GET', "/tokens$_[0]");
});
is_deeply($seen, \@expected, 'nginx Link walk every token once, in order');

# State filters.

for my $state (qw(active revoked expired all)) {
    my @want = grep { $state eq 'all' || $state_of{$_} eq $state } @expected;
    ($seen) = walk("state $state", "?state=$state&limit=40", by_link => 1);
    is_deeply($seen, \@want, "state $state tokens in order");
    ok(@want > 40, "state $state spans pages");
}

my $r = $t->admin('POST', "/tokens/$issued[0]/revoke");
is($r->{status}, 200, 'revoke one issued token');
($seen) = walk('state revoked after revoke', '?state=revoked&limit=1000');
ok((grep { $_ eq $issued[0] } @$seen), 'revoked token listed as revoked');
($seen) = walk('state active after revoke', '?state=active&limit=1000');
ok(!(grep { $_ eq $issued[0] } @$seen), 'revoked token not listed as active');

# Encodes text as a cursor: unpadded base64url.
sub cursor {
    my $c = encode_base64($_[0], '');
    $c =~ tr{+/}{-_};
    $c =~ s/=+$//;
    return $c;
}

# Returns the jti values of a response's rows.
sub jtis {
    my ($x) = @_;
    return [ map { $_->{jti} } @{ ref $x->{json} eq 'ARRAY' ? $x->{json} : [] } ];
}

# A cursor is a position, not a row: it works after its row is gone, and a
# quote in it is data, not SQL.

$r = $t->admin('GET', '/tokens?limit=3');
my $third = $r->{json}[2]{jti};
my $cursor = $r->{headers}{'x-next-cursor'};
$t->execute("DELETE FROM client_tokens WHERE jti = '$third'");
$r = $t->admin('GET', "/tokens?limit=2&after=$cursor");
is_deeply(jtis($r), [ @expected[3, 4] ],
    'cursor of a deleted row continues after it');
@expected = grep { $_ ne $third } @expected;

$r = $t->admin('GET', '/tokens?limit=5&after=' . cursor("1.x'OR'1'='1"));
is($r->{status}, 200, 'cursor with a quote status');
is_deeply(jtis($r), [ @expected[0 .. 4] ],
    'cursor with a quote is a position');
is(scalar $t->query('SELECT 1 FROM client_tokens'), scalar @expected,
    'cursor with a quote changes no row');

$r = $t->admin('GET', '/tokens?limit=1&after=' . cursor('253402300799999999.~'));
is_deeply($r->{json}, [], 'cursor at the last microsecond of 9999');
ok(!exists $r->{headers}{'x-next-cursor'}, 'empty page without a cursor');

# Bounds and malformed values: 400 in the OpenAI error format.

sub bad {
    my ($query, $param, $message, $name) = @_;
    my $x = $t->admin('GET', "/tokens?$query");
    is($x->{status}, 400, "$name status");
    my $e = $x->{json}{error} // {};
    is($e->{type}, 'invalid_request_error', "$name type");
    is($e->{param}, $param, "$name param");
    like($e->{message} // '', $message, "$name message");
    ok(exists $e->{code}, "$name has code");
}

my $range = qr/^limit: expected an integer from 1 to 1000/;
bad('limit=0', 'limit', $range, 'limit 0');
bad('limit=1001', 'limit', $range, 'limit 1001');
bad('limit=-1', 'limit', $range, 'limit negative');
bad('limit=abc', 'limit', $range, 'limit not a number');
bad('limit=1.5', 'limit', $range, 'limit fraction');
bad('limit=', 'limit', $range, 'limit empty');
bad('limit', 'limit', $range, 'limit without value');
bad('limit=+5', 'limit', $range, 'limit plus sign');
bad('limit=%205', 'limit', $range, 'limit leading space');
bad('limit=1e2', 'limit', $range, 'limit exponent');
bad('limit=99999999999999999999', 'limit', $range, 'limit overflow');
is($t->admin('GET', '/tokens?limit=1')->{status}, 200, 'limit 1 accepted');
is($t->admin('GET', '/tokens?limit=1000')->{status}, 200, 'limit 1000 accepted');
is($t->admin('GET', '/tokens?limit=%31%30')->{status}, 200,
    'limit percent-encoded accepted');

my $states = qr/^state: expected active, revoked, expired or all/;
bad('state=bogus', 'state', $states, 'state unknown');
bad('state=ACTIVE', 'state', $states, 'state uppercase');
bad('state=', 'state', $states, 'state empty');
bad('state=active%00', 'state', qr/malformed percent escape/, 'state NUL');

my $after = qr/^after: invalid cursor/;
my %bad_cursors = (
    'empty'                 => '',
    'not base64url'         => '!!!!',
    'standard base64'       => 'MTIzLmFi+/==',
    'padded'                => cursor('123.ab') . '=',
    'stray bits'            => 'MTIzLmF',
    'no dot'                => cursor('123'),
    'empty jti'             => cursor('123.'),
    'empty time'            => cursor('.abc'),
    'letters in time'       => cursor('12a.abc'),
    'leading zero'          => cursor('0123.abc'),
    'negative time'         => cursor('-1.abc'),
    'time after 9999'       => cursor('253402300800000000.abc'),
    '19 digits'             => cursor('1000000000000000000.abc'),
    'space in jti'          => cursor('123.a b'),
    'control in jti'        => cursor("123.a\tb"),
    'jti of 65'             => cursor('123.' . ('a' x 65)),
    'too long'              => 'A' x 200,
);
for my $case (sort keys %bad_cursors) {
    bad("after=$bad_cursors{$case}", 'after', $after, "after $case");
}
is($t->admin('GET', '/tokens?after=' . cursor('123.' . ('a' x 64)))->{status},
    200, 'after jti of 64 accepted');

bad('limit=0&state=bogus', 'limit',
    qr/^limit: expected .*; state: expected/, 'two invalid parameters');
bad('foo=1', 'foo', qr/"foo" is not a parameter.*limit, after and state/,
    'unknown parameter');
bad('limit=1&limit=2', 'limit', qr/"limit" appears more than once/,
    'repeated parameter');
bad('limit=%zz', 'limit', qr/malformed percent escape/, 'malformed escape');
bad('limit=%4', 'limit', qr/malformed percent escape/, 'cut escape');

$r = $t->admin_via_nginx('GET', '/tokens?limit=0');
is($r->{status}, 400, 'limit 0 through nginx status');
is($r->{json}{error}{param}, 'limit', 'limit 0 through nginx param');

# HEAD has the headers of GET and no body.

$r = $t->admin('HEAD', '/tokens?limit=2');
is($r->{status}, 200, 'HEAD status');
is($r->{body}, '', 'HEAD no body');
ok(defined $r->{headers}{'x-next-cursor'}, 'HEAD next cursor');

# Only admins list tokens.

for my $role (qw(viewer operator)) {
    $r = $t->worker_request('GET', '/admin/api/tokens?limit=1', role => $role);
    is($r->{status}, 403, "list as $role forbidden");
    is($r->{json}{error}{type}, 'permission_error', "list as $role error type");
    unlike($r->{body}, qr/"jti"/, "list as $role no rows");
}
is($t->worker_request('GET', '/admin/api/tokens?limit=1', role => 'admin')
    ->{status}, 200, 'list as admin role');
is($t->worker_request('GET', '/admin/api/tokens')->{status}, 401,
    'list without credential');

$t->finish;
