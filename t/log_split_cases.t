#!/usr/bin/perl

# Replays of spool files whose rejected rows sit at the start, at the end,
# side by side or everywhere, with batches of 1, 2, 3 and 8 rows: every
# accepted row is stored once, and every rejected row is set aside once
# and never stored.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_LOG_BATCH => 8 });
my $spool = $t->dir . '/spool';

$t->execute("ALTER TABLE chat_logs ADD CONSTRAINT chat_logs_test_model"
    . " CHECK (model <> 'reject-me')");

# Spool lines as cg_spool_encode() writes them. A row with an error message
# of 255 bytes takes about 400, so a read of the spool (64 KB) returns fewer
# rows than a batch of 200.
sub read_rejected {
    open my $fh, '<', "$spool.rejected" or return '';
    local $/;
    return <$fh>;
}

# Writes pattern ("g" an accepted row, "B" a rejected one) to the spool,
# starts the worker with batches of $batch rows and checks the outcome.
sub replay_case {
    my ($name, $batch, $pattern, $long) = @_;

    is($t->stop_process('worker', 'TERM'), 0, "$name worker stopped");
    $t->set_worker_env(CHATGATE_LOG_BATCH => $batch);
    unlink "$spool.rejected";

    my ($good, $bad) = $t->write_spool_pattern($spool, "split-$name", $pattern, $long);
    my @good = @$good;
    my @bad = @$bad;

    $t->start_worker();
    ok($t->wait_for(sub { -z $spool }, 30), "$name spool emptied");

    my %count = map { $_->{request_id} => $_->{n} } $t->query(
        "SELECT request_id, count(*) AS n FROM chat_logs"
        . " WHERE request_id LIKE 'split-$name-%' GROUP BY request_id");

    my @missing = grep { ($count{$_} // 0) != 1 } @good;
    is("@missing", '', "$name accepted rows stored once");

    my @stored = grep { $count{$_} } @bad;
    is("@stored", '', "$name rejected rows not stored");

    my $rejected = read_rejected();
    my $once = 0;
    for my $rid (@bad) {
        my $n = () = $rejected =~ /\t\Q$rid\E\t/g;
        $once++ if $n == 1;
    }
    is($once, scalar @bad, "$name rejected rows set aside once");
    my $lines = () = $rejected =~ /\n/g;
    is($lines, scalar @bad, "$name rejected file rows");
}

srand(7);
sub random_pattern {
    my ($n, $p) = @_;
    return join '', map { rand() < $p ? 'B' : 'g' } 1 .. $n;
}

my @cases = (
    [ 'start8',    8, 'B' . 'g' x 15 ],
    [ 'end8',      8, 'g' x 15 . 'B' ],
    [ 'edges8',    8, 'Bg' . 'g' x 5 . 'BB' . 'g' x 6 . 'B' ],
    [ 'several8',  8, 'gBgBBggBgggggggBg' ],
    [ 'all8',      8, 'B' x 12 ],
    [ 'one8',      8, 'B' ],
    [ 'random8a',  8, random_pattern(40, 0.1) ],
    [ 'random8b',  8, random_pattern(40, 0.4) ],
    [ 'batch1',    1, 'gBgBBgB' ],
    [ 'batch2',    2, 'BgBggBBgBg' ],
    [ 'batch2all', 2, 'BBBBB' ],
    [ 'batch3',    3, random_pattern(20, 0.3) ],
    [ 'batch5',    5, random_pattern(30, 0.2) ],
    [ 'long200',   200, random_pattern(400, 0.02), 1 ],
    [ 'longall',   200, 'B' x 40 . 'g' x 200, 1 ],
);

for my $case (@cases) {
    replay_case(@$case);
}

ok($t->is_running('worker'), 'split cases worker running');

$t->finish();
