#!/usr/bin/perl

# A complete answer larger than one read from the provider's socket: the
# worker collects it across many writes of curl's into one block, which it
# grows by copying, and must hand on every byte in order.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

for my $words (1, 3000, 60000) {
    my $r = $t->chat(content => "[emu words=$words] long answer");
    is($r->{status}, 200, "$words words status");

    my $content = $r->{json} && $r->{json}{choices}[0]{message}{content} // '';
    my $expected = join ' ', map { "w$_" } 1 .. $words;
    is(length $content, length $expected, "$words words length");
    ok($content eq $expected, "$words words content intact");
}

$t->finish();
