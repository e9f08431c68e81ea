#!/usr/bin/perl

# "chatgate-worker serve" runs itself again with GNUTLS_NO_IMPLICIT_INIT=1,
# so that GnuTLS, which libcurl's librtmp links, does not initialize itself.
# The new image keeps the PID that the test started, and chats still work.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $pid = $t->pid('worker');
ok($pid, 'gnutls worker pid');

my $environ = '';
if (open my $fh, '<', "/proc/$pid/environ") {
    local $/;
    $environ = <$fh> // '';
    close $fh;
}
my %env = map { split /=/, $_, 2 } grep { /=/ } split /\0/, $environ;
is($env{GNUTLS_NO_IMPLICIT_INIT}, '1', 'gnutls worker environment');

my $r = $t->chat(content => 'gnutls not initialized');
is($r->{status}, 200, 'gnutls worker chat status');

$t->finish;
