#!/usr/bin/perl

# Four worker processes and eight concurrent clients: the shared zone lets
# exactly the allowed number of requests through.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;

use ChatgateNginx;

my $port = free_port();
my $control = free_port();
my $clients = 8;
my $per_client = 25;

my $nginx = start_nginx(workers => 4, ports => [$port, $control],
                        http => limit_http(port => $port, control => $control));

# Runs $clients processes of $per_client requests each and returns how
# many got 200 and how many got 429.
sub flood {
    my @pids;

    for my $c (1 .. $clients) {
        pipe my $rd, my $wr or die "pipe failed: $!";
        my $pid = fork // die "fork failed: $!";

        if ($pid == 0) {
            close $rd;
            alarm 60;
            my %n;
            $n{ http_request(port => $port, path => '/')->{status} }++
                for 1 .. $per_client;
            print $wr join(' ', map { "$_=$n{$_}" } sort keys %n), "\n";
            close $wr;
            POSIX::_exit(0);
        }

        close $wr;
        push @pids, [$pid, $rd];
    }

    my %total;

    for my $p (@pids) {
        my $line = readline($p->[1]) // '';
        waitpid $p->[0], 0;
        $total{$1} += $2 while $line =~ /(\d+)=(\d+)/g;
    }

    return \%total;
}

# the day quota is a plain count

is(control_put($control, "rule global - - - 75\n")->{status}, 200,
   'workers day quota push');

my $total = flood();
is($total->{200}, 75, 'workers day quota admits exactly 75');
is($total->{429}, $clients * $per_client - 75, 'workers day quota denies rest');

# a burst of 60 at one request per minute: no refill during the test

is(control_put($control, "rule global 1 - 60 -\n")->{status}, 200,
   'workers burst push');

$total = flood();
is($total->{200}, 60, 'workers burst admits exactly 60');
is($total->{429}, $clients * $per_client - 60, 'workers burst denies rest');

is_deeply([error_log_alerts($nginx)], [], 'workers no alerts');

done_testing();
