#!/usr/bin/perl

# A rejected batch being replayed in halves, interrupted: new rows spooled
# meanwhile, the INSERT's backend terminated, the worker restarted, the
# server restarted. Every accepted row is stored once, and every rejected
# row is set aside and never stored.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_LOG_BATCH => 8 });
my $spool = $t->dir . '/spool';

$t->install_log_gate();

sub read_rejected {
    open my $fh, '<', "$spool.rejected" or return '';
    local $/;
    return <$fh>;
}

# Stops the worker, writes pattern to the spool and starts the worker with
# INSERTs held, then waits for the split. Returns the good and bad ids.
sub start_split {
    my ($name, $pattern) = @_;

    is($t->stop_process('worker', 'TERM'), 0, "$name worker stopped");
    unlink "$spool.rejected";
    truncate $t->dir . '/worker.log', 0;

    my ($good, $bad) = $t->write_spool_pattern($spool, "outage-$name", $pattern);

    $t->set_log_gate('slow', 1);
    $t->start_worker();
    ok($t->wait_for(sub {
        scalar $t->logs_containing('replaying them in smaller batches',
            'worker') }, 15), "$name split started");

    return ($good, $bad);
}

sub check_outcome {
    my ($name, $good, $bad) = @_;

    $t->set_log_gate('slow', 0);
    ok($t->wait_for(sub { -z $spool }, 30), "$name spool emptied");

    my @missing = grep { $t->log_row_count($_) != 1 } @$good;
    is("@missing", '', "$name accepted rows stored once");

    my @stored = grep { $t->log_row_count($_) != 0 } @$bad;
    is("@stored", '', "$name rejected rows not stored");

    my $rejected = read_rejected();
    my %set_aside = map {
        my $rid = $_;
        my $n = () = $rejected =~ /\t\Q$rid\E\t/g;
        ($rid => $n);
    } @$bad;
    my @lost = grep { $set_aside{$_} == 0 } @$bad;
    is("@lost", '', "$name rejected rows set aside");

    my @twice = grep { $set_aside{$_} > 1 } @$bad;
    is("@twice", '', "$name rejected rows set aside once");
}

my $pattern = 'gggBgggg' . 'ggggggBg' . 'Bggggggg' . 'gggggggB';

# New rows, some rejected, spooled by failed COPYs during the split.
{
    my ($good, $bad) = start_split('newrows', $pattern);
    $t->set_log_gate('copyfail', 1);
    for my $i (1 .. 6) {
        my $reject = $i == 2 || $i == 6;
        my $r = $t->chat(model => $reject ? 'openai/reject-me'
                                          : 'openai/gpt-4o-mini',
                         content => "during the split $i");
        is($r->{status}, 200, "newrows chat $i status");
        my $rid = $t->request_id($r->{tag});
        push @{ $reject ? $bad : $good }, $rid;
    }
    ok($t->wait_for(sub {
        $t->log_lines('worker', qr/COPY of \d+ log rows failed/) }, 10),
       'newrows copy failed');
    sleep 0.5;
    $t->set_log_gate('copyfail', 0);
    check_outcome('newrows', $good, $bad);
}

# The backend of a held INSERT terminated, three times.
{
    my ($good, $bad) = start_split('terminated', $pattern);
    for my $n (1 .. 3) {
        ok($t->wait_for(sub {
            my ($row) = $t->query("SELECT count(*) AS n FROM pg_stat_activity"
                . " WHERE query LIKE 'INSERT INTO chat_logs%'"
                . " AND state = 'active'");
            $row->{n};
        }, 10), "terminated insert $n running");
        $t->query("SELECT pg_terminate_backend(pid) AS done"
            . " FROM pg_stat_activity WHERE query LIKE 'INSERT INTO chat_logs%'"
            . " AND pid <> pg_backend_pid()");
        sleep 0.5;
    }
    check_outcome('terminated', $good, $bad);
}

# The worker stopped and started during the split.
{
    my ($good, $bad) = start_split('restart', $pattern);
    ok($t->wait_for(sub {
        $t->log_lines('worker', qr/rejected by the database, set aside in/) }, 15),
       'restart first row set aside');
    is($t->stop_process('worker', 'TERM'), 0, 'restart worker stopped');
    ok(-s "$spool.offset", 'restart replay offset saved');
    $t->start_worker();

    # The worker goes on from the saved replay offset, so the rows set
    # aside before the restart are not set aside again.
    ok($t->wait_for(sub {
        $t->log_lines('worker', qr/resuming the replay of/) }, 15),
       'restart replay resumed');
    check_outcome('restart', $good, $bad);
    ok(!-e "$spool.offset", 'restart replay offset removed');
}

# The server stopped (fast shutdown) and started again during the split.
# pg.sh finds the cluster through a folder whose "location" file names it.
{
    my $pg = $t->dir . '/pg';
    mkdir $pg;
    open my $fh, '>', "$pg/location" or die "open $pg/location failed: $!";
    print $fh "$ENV{CHATGATE_TEST_PGHOST}\n";
    close $fh;
    my $pg_sh = "$t->{repo}/scripts/pg.sh";

    my ($good, $bad) = start_split('server', $pattern);
    ok($t->wait_for(sub {
        $t->log_lines('worker', qr/rejected by the database, set aside in/) }, 15),
       'server first row set aside');
    is(system('bash', '-c', ". '$pg_sh' && pg_stop '$pg'"), 0,
       'server stopped');
    sleep 2;
    is(system('bash', '-c', ". '$pg_sh' && pg_start '$pg' >/dev/null"), 0,
       'server started');
    check_outcome('server', $good, $bad);
}

ok($t->is_running('worker'), 'split outages worker running');

$t->finish();
