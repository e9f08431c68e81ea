#!/usr/bin/perl

# SIGTERM to the worker while a slow chat is in flight: the chat completes,
# its row is written, and the worker exits cleanly.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use Time::HiRes qw(sleep);

my $t = Chatgate::Test->new();

my $content = '[emu delay_ms=2500] finish this before you go';
$t->in_background('slow_chat', sub {
    my $r = $t->chat(content => $content, tag => 'sigterm-slow-chat');
    return { status => $r->{status}, content => $r->{content} };
});

# Long enough for the request to reach the emulator, well before its reply.
sleep 1;
ok($t->is_running('worker'), 'sigterm worker running before signal');
$t->signal('worker', 'TERM');

my $result = $t->result('slow_chat', 15) // {};
is($result->{status}, 200, 'sigterm slow chat status');
like($result->{content} // '', qr/emulator reply to:/, 'sigterm slow chat reply');

my $status = $t->wait_exit('worker', 15);
is($status, 0, 'sigterm worker exit status');

my $rid = $t->request_id('sigterm-slow-chat');
ok($rid && $t->log_row($rid, 2), 'sigterm slow chat logged before exit');

$t->finish;
