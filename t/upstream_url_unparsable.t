#!/usr/bin/perl

# A stored key whose base URL curl cannot parse, called once the table of
# parsed provider URLs is full: the call fails with 502, and the slot that
# the worker emptied for it must not break the lookups of later calls. The
# admin API rejects such a URL, but the worker loads provider_keys as the
# database has them, so a row written by an older version or by hand can
# hold one.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $emu = '127.0.0.1:' . $t->emulator_port;

# More distinct base URLs than the table has slots (32).
my @ids;
for my $i (0 .. 35) {
    push @ids, $t->add_key(label => "url $i",
        secret => "sk-unparsable-$i-" . ('x' x 16),
        base_url => "http://$emu/k$i/../v1");
}
my $bad = $t->add_key(label => 'bad port',
    secret => 'sk-unparsable-bad-' . ('b' x 16), base_url => "http://$emu/v1");
$t->execute("UPDATE provider_keys SET base_url = 'http://127.0.0.1:99999/v1'"
    . " WHERE id = '$bad'");

is($t->stop_process('worker', 'TERM'), 0, 'unparsable url worker stopped');
$t->start_worker();
$t->wait_keys_loaded();

sub key_chat {
    my ($id, $content) = @_;
    return $t->chat(key => undef, headers => { 'X-Key-Id' => $id,
        'X-Admin-Token' => $t->admin_token }, model => 'gpt-4o-mini',
        content => $content);
}

my $ok = 0;
for my $id (@ids) {
    $ok++ if key_chat($id, 'fill the table')->{status} == 200;
}
is($ok, scalar @ids, 'unparsable url table filled');

my $r = key_chat($bad, 'unparsable');
is($r->{status}, 502, 'unparsable url call status');

$ok = 0;
for my $id (@ids) {
    $ok++ if key_chat($id, 'after the unparsable url')->{status} == 200;
}
is($ok, scalar @ids, 'unparsable url later calls answered');
ok($t->is_running('worker'), 'unparsable url worker running');

$t->finish();
