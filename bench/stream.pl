#!/usr/bin/perl

# Driver of bench/stream.sh: starts a stack with Chatgate::Test (nginx with
# room for the connections), runs the load client through nginx and
# straight against the emulator, and prints the figures.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use Chatgate::Test;

my ($streams, $chunks) = @ARGV;

# The tests' nginx allows 1024 connections per process; a stream needs two.
{
    no warnings 'redefine';
    my $write = \&Chatgate::Test::_write_nginx_conf;
    *Chatgate::Test::_write_nginx_conf = sub {
        my ($self) = @_;
        $write->($self);
        my $file = $self->dir . '/conf/nginx.conf';
        open my $in, '<', $file or die "open $file failed: $!";
        local $/;
        my $conf = <$in>;
        close $in;
        $conf =~ s/worker_connections 1024;/worker_connections 8192;/;
        $conf =~ s/error_log (\S+) info;/error_log $1 warn;/;
        open my $out, '>', $file or die "open $file failed: $!";
        print $out $conf;
        close $out;
    };
}

my $t = Chatgate::Test->new(env => {
    CHATGATE_LOG_LEVEL  => 'warn',
    CHATGATE_LOG_BATCH  => 1000,
});

sub vm {
    my ($field) = @_;
    open my $fh, '<', '/proc/' . $t->pid('worker') . "/status" or return -1;
    while (<$fh>) {
        return $1 if /^\Q$field\E:\s+(\d+) kB/;
    }
    return -1;
}

my $load = 'build/bench/stream_load';

# a warm-up so that connections and caches are set up
system($load, '127.0.0.1', $t->port, 10, $chunks, $t->key, 30);

my $rss_before = vm('VmRSS');
my $via = `$load 127.0.0.1 ${\ $t->port} $streams $chunks ${\ $t->key} 120`;
my $hwm = vm('VmHWM');
my $direct = `$load 127.0.0.1 ${\ $t->emulator_port} $streams $chunks ${\ $t->key} 120`;

print "via nginx and the worker: $via";
print "straight from the emulator: $direct";
print "worker VmRSS before: $rss_before kB, VmHWM after: $hwm kB\n";

# Why streams failed: nginx's and the worker's complaints, counted, with
# connection numbers and times cut so that equal causes group together.
for my $log ('error.log', 'worker.log') {
    my %seen;
    open my $fh, '<', $t->dir . "/$log" or next;
    while (my $line = <$fh>) {
        next unless $line =~ /\[(error|crit|alert|emerg)\]|\b(warn|error)\b \[/;
        $line =~ s/^\S+ \S+ //;
        $line =~ s/\d+#\d+: \*\d+ //;
        $line =~ s/\[[0-9a-f]{32}\]/[id]/;
        $line =~ s/client: .*//;
        chomp $line;
        $seen{$line}++;
    }
    close $fh;
    for my $line (sort { $seen{$b} <=> $seen{$a} } keys %seen) {
        printf "%s: %d x %s\n", $log, $seen{$line}, $line;
    }
}

ok(1, 'benchmark ran');
$t->finish;
