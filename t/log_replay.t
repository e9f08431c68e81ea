#!/usr/bin/perl

# A replayed batch may hold rows that are stored already: its first INSERT
# committed, but the answer was lost with the connection. The log writer
# replays the spool with ON CONFLICT DO NOTHING, so such rows are stored
# once and the new rows of the same batch are stored as well. Batches from
# the queue insert without that clause, and are checked here too.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my @stored;
for my $i (1 .. 2) {
    my $r = $t->chat(content => "stored before the replay $i");
    is($r->{status}, 200, "log replay chat $i status");
    my $rid = $t->request_id($r->{tag});
    ok($rid && $t->log_row($rid), "log replay chat $i logged");
    push @stored, $rid;
}

my $list = join(', ', map { "'$_'" } @stored);
my @rows = $t->query("SELECT request_id, client_addr, key_id, provider, model,"
    . " ok::int AS ok, status, latency_ms,"
    . " (extract(epoch FROM created_at) * 1000000)::bigint AS time_us"
    . " FROM chat_logs WHERE request_id IN ($list) ORDER BY created_at");
is(scalar @rows, 2, 'log replay rows read back');

is($t->stop_process('worker', 'TERM'), 0, 'log replay worker stopped');

# Spool lines as cg_spool_encode() writes them: version 1, then the 18
# fields of cg_log_row_t, -1 for a NULL number.
sub spool_line {
    my ($row) = @_;
    return join("\t", 1, $row->{time_us}, $row->{request_id},
        $row->{client_addr}, $row->{key_id}, $row->{provider}, $row->{model},
        $row->{ok}, $row->{status}, $row->{latency_ms}, -1, -1, -1, '', '',
        0, -1, -1, -1) . "\n";
}

my $new = {
    %{ $rows[1] },
    request_id => 'replay-new-' . $$,
    time_us    => $rows[1]{time_us} + 1000,
};

my $spool = $t->dir . '/spool';
open my $fh, '>', $spool or die "open $spool failed: $!";
print $fh spool_line($_) for @rows, $new;
close $fh;

$t->start_worker();

ok($t->log_row($new->{request_id}, 15), 'log replay new row stored');
for my $rid (@stored) {
    my ($n) = map { $_->{n} }
        $t->query("SELECT count(*) AS n FROM chat_logs WHERE request_id = '$rid'");
    is($n, 1, "log replay row $rid stored once");
}

ok(!-e "$spool.rejected", 'log replay rejected nothing');
ok($t->wait_for(sub { -z $spool }, 10), 'log replay emptied the spool');
ok(scalar $t->logs_containing('replaying', 'worker'), 'log replay logged');

# After the replay, rows from the queue are stored as before.
my $r = $t->chat(content => 'after the replay');
is($r->{status}, 200, 'log replay chat after status');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'log replay chat after logged');

$t->finish();
