#!/usr/bin/perl

# The replay offset file <spool>.offset against spool files that changed
# while the worker was down: a spool replaced by another one, a spool
# emptied and filled again, an offset in the middle of a line or past the
# end, and a worker killed during a replay. Every spooled row is stored
# once, and every rejected row is set aside once.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_LOG_BATCH => 4 });
my $spool = $t->dir . '/spool';

$t->install_log_gate();

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return <$fh> // '';
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "open $path failed: $!";
    print $fh $text;
    close $fh or die "write $path failed: $!";
}

# Stops the worker and clears the files of the previous case.
sub reset_case {
    my ($name) = @_;
    is($t->stop_process('worker', 'TERM'), 0, "$name worker stopped");
    unlink $spool, "$spool.offset", "$spool.rejected";
    truncate $t->dir . '/worker.log', 0;
}

# Starts a replay of pattern with INSERTs held, and stops the worker once
# it has saved a replay offset. Returns the saved offset.
sub interrupt_replay {
    my ($name, $prefix, $pattern) = @_;

    $t->write_spool_pattern($spool, $prefix, $pattern);
    $t->set_log_gate('slow', 1);
    $t->start_worker();
    ok($t->wait_for(sub { -s "$spool.offset" }, 15),
       "$name replay offset saved");
    is($t->stop_process('worker', 'TERM'), 0, "$name worker stopped in replay");
    $t->set_log_gate('slow', 0);

    my ($offset) = read_file("$spool.offset") =~ /^(\d+)/;
    ok($offset && $offset < -s $spool, "$name replay interrupted")
        or diag("offset " . ($offset // 'none') . ", spool " . (-s $spool));
    return $offset;
}

sub check_outcome {
    my ($name, $good, $bad) = @_;

    ok($t->wait_for(sub { -z $spool }, 30), "$name spool emptied");

    my @missing = grep { $t->log_row_count($_) != 1 } @$good;
    is("@missing", '', "$name accepted rows stored once");

    my @stored = grep { $t->log_row_count($_) != 0 } @$bad;
    is("@stored", '', "$name rejected rows not stored");

    my $rejected = read_file("$spool.rejected");
    my @wrong = grep {
        my $rid = $_;
        my $n = () = $rejected =~ /\t\Q$rid\E\t/g;
        $n != 1;
    } @$bad;
    is("@wrong", '', "$name rejected rows set aside once");

    ok(!-e "$spool.offset", "$name replay offset removed");
}

# A replay interrupted, then the spool replaced by another one with lines
# of the same length: the old offset falls on a line end of the new file.
{
    reset_case('replaced');
    interrupt_replay('replaced', 'old-r', 'g' x 16);

    my ($good, $bad) = $t->write_spool_pattern($spool, 'new-r', 'g' x 16);
    $t->start_worker();
    check_outcome('replaced', $good, $bad);
    ok(scalar $t->log_lines('worker', qr/replay offset file .* does not match/),
       'replaced offset mismatch logged');
}

# A replay interrupted, then the spool emptied while the worker was down.
# The worker starts on the empty file, and later spools new rows, here
# written while it is stopped again.
{
    reset_case('emptied');
    interrupt_replay('emptied', 'old-e', 'g' x 16);

    write_file($spool, '');
    $t->start_worker();
    ok($t->wait_for(sub {
        $t->log_lines('worker', qr/replay offset file .* does not match/) }, 10),
       'emptied offset mismatch logged');
    ok(!-e "$spool.offset", 'emptied stale offset removed at start');

    is($t->stop_process('worker', 'TERM'), 0, 'emptied worker stopped');
    my ($good, $bad) = $t->write_spool_pattern($spool, 'new-e', 'g' x 16);
    $t->start_worker();
    check_outcome('emptied', $good, $bad);
}

# Offsets that no worker wrote: in the middle of a line, past the end,
# not a number. Each is ignored and the whole spool replayed.
for my $case (['mid-line', sub { $_[0] + 5 }], ['past-end', sub { $_[1] + 100 }],
              ['garbage', sub { 'x12' }])
{
    my ($name, $value) = @$case;

    reset_case($name);
    my ($good, $bad) = $t->write_spool_pattern($spool, "off-$name", 'ggBggg');
    my $line = length(read_file($spool)) / 6;
    write_file("$spool.offset", $value->(2 * $line, -s $spool) . "\n");
    $t->start_worker();
    check_outcome($name, $good, $bad);
}

# The worker killed with SIGKILL in the middle of a split replay, twice.
{
    reset_case('killed');
    my ($good, $bad) = $t->write_spool_pattern($spool, 'kill',
        'gggBgggg' . 'ggggggBg' . 'Bggggggg');
    $t->set_log_gate('slow', 1);
    $t->start_worker();
    for my $n (1 .. 2) {
        ok($t->wait_for(sub {
            $t->log_lines('worker', qr/set aside in/) >= $n }, 15),
           "killed row $n set aside");
        $t->stop_process('worker', 'KILL');
        $t->start_worker();
    }
    $t->set_log_gate('slow', 0);
    check_outcome('killed', $good, $bad);
}

ok($t->is_running('worker'), 'replay offset worker running');

$t->finish();
