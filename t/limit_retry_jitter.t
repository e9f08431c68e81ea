#!/usr/bin/perl

# Retry-After on 429: the wait rounded up to whole seconds, plus a jitter
# drawn in whole seconds, so clients denied at one moment get different
# values even with a jitter below a second.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use List::Util qw(max min);
use Test::More;

use ChatgateNginx;

my $port = free_port();

# One request a minute per address: the first is admitted, the rest wait
# for the minute's token, 60 s at most. X-Real-IP gives each location's
# batch an address of its own.
my $nginx = start_nginx(ports => [$port], http => <<"CONF");
    chatgate_zone cg 1m;
    chatgate_default_rule ip:* per_minute=1;

    server {
        listen 127.0.0.1:$port;

        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;

        chatgate on;
        chatgate_limit_zone cg;
        root %%DIR%%;

        location /none {
            chatgate_retry_jitter 0;
            try_files /ok.txt =404;
        }

        location /half {
            chatgate_retry_jitter 500ms;
            try_files /ok.txt =404;
        }

        location /two {
            chatgate_retry_jitter 2s;
            try_files /ok.txt =404;
        }
    }
CONF

write_file("$nginx->{dir}/ok.txt", "ok\n");

# Sends one admitted request and, after $pause seconds, $n denied ones
# from address $addr to $path. Returns the Retry-After values of the
# denials.
sub retry_afters {
    my ($path, $addr, $n, $pause) = @_;
    my @values;

    my $r = http_request(port => $port, path => $path,
                         headers => [['X-Real-IP', $addr]]);
    is($r->{status}, 200, "$path first request admitted");
    select(undef, undef, undef, $pause) if $pause;

    for (1 .. $n) {
        $r = http_request(port => $port, path => $path,
                          headers => [['X-Real-IP', $addr]]);
        is($r->{status}, 429, "$path request denied") or last;
        push @values, $r->{headers}{'retry-after'}[0];
    }

    return @values;
}

sub distinct { my %seen; return scalar grep { !$seen{$_}++ } @_ }

# Without jitter every denial of one moment gets the same wait, which
# is at most the minute.

my @none = retry_afters('/none', '192.0.2.1', 20);
is(scalar @none, 20, 'no jitter all denied');
ok(!(grep { !/^\d+$/ } @none), 'no jitter values are whole seconds');
cmp_ok(min(@none), '>=', 1, 'no jitter at least one second');
cmp_ok(max(@none), '<=', 60, 'no jitter at most the minute');
cmp_ok(max(@none) - min(@none), '<=', 1, 'no jitter values within a second');

# RateLimit-Reset on a 429 is the same wait as Retry-After without the
# jitter, rounded up too: a client that waits RateLimit-Reset seconds must
# not be denied again. The pause leaves a wait of about 59.4 s.

my $r = http_request(port => $port, path => '/none',
                     headers => [['X-Real-IP', '192.0.2.4']]);
is($r->{status}, 200, 'reset rounding first request admitted');
select(undef, undef, undef, 0.6);
$r = http_request(port => $port, path => '/none',
                  headers => [['X-Real-IP', '192.0.2.4']]);
is($r->{status}, 429, 'reset rounding request denied');
is($r->{headers}{'ratelimit-reset'}[0], $r->{headers}{'retry-after'}[0],
    'reset rounding equals retry-after without jitter');
is($r->{headers}{'retry-after'}[0], 60, 'reset rounding retry-after rounded up');

# 500ms adds 0 or 1 s. Twenty denials all getting the same value has a
# chance of 2 in 2^20. The pause leaves a wait of about 59.4 s, where a
# jitter added in milliseconds before the rounding would never reach
# the next second.

my @half = retry_afters('/half', '192.0.2.2', 20, 0.6);
is(scalar @half, 20, 'half second jitter all denied');
cmp_ok(min(@half), '>=', 1, 'half second jitter at least one second');
cmp_ok(max(@half), '<=', 61, 'half second jitter at most the minute and one');
cmp_ok(max(@half) - min(@half), '<=', 2, 'half second jitter spread bound');
cmp_ok(distinct(@half), '>=', 2, 'half second jitter spreads the denials');

# 2s adds 0, 1 or 2 s.

my @two = retry_afters('/two', '192.0.2.3', 30);
is(scalar @two, 30, 'two second jitter all denied');
cmp_ok(max(@two), '<=', 62, 'two second jitter at most the minute and two');
cmp_ok(max(@two) - min(@two), '<=', 3, 'two second jitter spread bound');
cmp_ok(distinct(@two), '>=', 3, 'two second jitter spreads the denials');

done_testing();
