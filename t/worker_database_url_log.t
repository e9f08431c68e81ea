#!/usr/bin/perl

# libpq's message for a DATABASE_URL it cannot parse quotes the part it
# choked on. A password with a '%' that is not written as %25, or a space
# in an unquoted keyword value, is then the quoted part. The worker must
# not log that message, and it stops at once, because such a URL never
# connects however often it retries.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $good_url = $t->env->{DATABASE_URL};

$t->stop_process('worker');

my $tag = join '', map { ('a'..'z')[rand 26] } 1 .. 16;
my $host = $t->env->{DATABASE_URL} =~ s{.*[?&]host=([^&]+).*}{$1}r;

# Each case: a name, the DATABASE_URL, and the text of the password that
# libpq would quote.
my @cases = (
    [ 'percent', "postgresql://postgres:pw%zz-$tag\@/db?host=$host", "pw%zz-$tag" ],
    [ 'keyword', "host=$host user=postgres password=pw $tag-space dbname=db",
      "$tag-space" ],
);

for my $case (@cases) {
    my ($name, $url, $password) = @$case;
    my $log = $t->dir . "/worker-$name.log";

    $t->set_worker_env(DATABASE_URL => $url);
    $t->spawn("worker-$name", $log, undef, $t->{build} . '/chatgate-worker',
        'serve', '--env-file', $t->dir . '/chatgate.env');

    my $status = $t->wait_exit("worker-$name", 10);
    ok(defined $status, "$name worker stopped");
    is(defined $status ? $status >> 8 : -1, 1, "$name worker exit status");
    $t->stop_process("worker-$name", 'TERM') unless defined $status;

    my $text = $t->read_log("worker-$name.log");
    like($text, qr/invalid DATABASE_URL/, "$name error logged");
    unlike($text, qr/\Q$password\E/, "$name password not logged");
    unlike($text, qr/\Q$tag\E/, "$name password part not logged");
}

# The worker starts again with a valid URL.
$t->set_worker_env(DATABASE_URL => $good_url);
$t->start_worker();
my $r = $t->chat(content => 'valid url again');
is($r->{status}, 200, 'valid url chat status');

$t->finish;
