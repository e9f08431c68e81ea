#!/usr/bin/perl

# A log row keeps at most 127 bytes of a model name. A longer name must be
# cut at a UTF-8 character boundary: cut inside a character, the log
# writer replaces the broken tail with '?', and the stored name ends with
# a character the client never sent.

use strict;
use warnings;
use utf8;

use Encode qw(encode_utf8);
use Test::More;
use Chatgate::Test;

# psql, which reads the rows back here, talks UTF-8.
$ENV{PGCLIENTENCODING} = 'UTF8';

my $t = Chatgate::Test->new();

# 100 two-byte characters: 200 bytes, under the request's 256-byte limit,
# so byte 127 falls inside a character. The emulator keeps fewer bytes of
# a model name than that, so the status of the chat is not checked here.
my $model = 'openai/' . ('é' x 100);
my $r = $t->chat(model => $model, content => 'a long non-ASCII model');
my $rid = $t->request_id($r->{tag});
ok($rid && $t->log_row($rid), 'log utf8 long model logged');

my ($row) = $t->query("SELECT encode(convert_to(model, 'UTF8'), 'hex') AS hex"
    . " FROM chat_logs WHERE request_id = '$rid'");
is($row->{hex}, unpack('H*', encode_utf8('é' x 63)),
   'log utf8 model cut at a character');

is(scalar $t->logs_containing('log rows failed', 'worker'), 0,
   'log utf8 no failed batch');
is(scalar $t->logs_containing('spooling log rows', 'worker'), 0,
   'log utf8 nothing spooled');

$t->finish();
