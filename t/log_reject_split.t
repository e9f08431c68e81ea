#!/usr/bin/perl

# A batch that the database rejects for the data of some of its rows is
# replayed from the spool in smaller and smaller batches: the rows that the
# database accepts are stored once each, and only the rejected rows go to
# the .rejected file, each with a log line that names its request id.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

# One batch of up to 8 rows, flushed after 2 s, so that the six chats below
# share a batch.
my $t = Chatgate::Test->new(env => {
    CHATGATE_LOG_FLUSH_MS => 2000,
    CHATGATE_LOG_BATCH    => 8,
});
my $spool = $t->dir . '/spool';

my $r = $t->chat(content => 'warm up');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid, 10), 'reject split warm up logged');

$t->execute("ALTER TABLE chat_logs ADD CONSTRAINT chat_logs_test_model"
    . " CHECK (model <> 'reject-me')");

my (@good, @bad);
for my $i (1 .. 6) {
    my $reject = $i == 1 || $i == 5;
    $r = $t->chat(model => $reject ? 'openai/reject-me' : 'openai/gpt-4o-mini',
                  content => "split chat $i");
    is($r->{status}, 200, "reject split chat $i status");
    my $id = $t->request_id($r->{tag});
    ok($id, "reject split chat $i request id");
    push @{ $reject ? \@bad : \@good }, $id;
}

ok($t->wait_for(sub {
    scalar $t->logs_containing('COPY of 6 log rows failed', 'worker') }, 10),
   'reject split one batch of six');

for my $id (@good) {
    ok($t->log_row($id, 20), "reject split accepted row $id logged");
    is($t->log_row_count($id), 1, "reject split accepted row $id stored once");
}

ok($t->wait_for(sub {
    $t->log_lines('worker', qr/rejected by the database, set aside in/) >= 2 }, 20),
   'reject split rejections logged');
ok(scalar $t->logs_containing('replaying them in smaller batches', 'worker'),
   'reject split split logged');

for my $id (@bad) {
    is($t->log_row_count($id), 0, "reject split rejected row $id not stored");
    is(scalar $t->log_lines('worker', qr/request \Q$id\E rejected/), 1,
       "reject split rejected row $id logged once");
}

open my $fh, '<', "$spool.rejected" or die "open $spool.rejected failed: $!";
my $rejected = do { local $/; <$fh> };
close $fh;
for my $id (@bad) {
    like($rejected, qr/\Q$id\E/, "reject split rejected row $id set aside");
}
for my $id (@good) {
    unlike($rejected, qr/\Q$id\E/, "reject split accepted row $id not set aside");
}
my $lines = () = $rejected =~ /\n/g;
is($lines, 2, 'reject split rejected file has two rows');

ok($t->wait_for(sub { -z $spool }, 15), 'reject split spool emptied');

# The writer goes on with whole batches.
$t->execute('ALTER TABLE chat_logs DROP CONSTRAINT chat_logs_test_model');
$r = $t->chat(content => 'after the split');
$rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid, 15), 'reject split chat after logged');
ok($t->is_running('worker'), 'reject split worker running');

$t->finish();
