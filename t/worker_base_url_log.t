#!/usr/bin/perl

# A provider base URL may carry a password in its user info, for a gateway
# with basic auth. The worker logs each provider's base URL at start, and
# that line must show the user info as "***@", as the admin API shows a
# stored key's base URL, while chats still use the URL as configured.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $password = 'gateway-pw-' . join('', map { ('a'..'z')[rand 26] } 1 .. 16);
my $port = $t->emulator_port;

$t->stop_process('worker');
truncate $t->dir . '/worker.log', 0;
$t->start_worker(
    OPENAI_BASE_URL => "http://gw:$password\@127.0.0.1:$port/v1",
    OLLAMA_BASE_URL => "http://:$password\@127.0.0.1:$port",
);

ok(scalar $t->log_lines('worker', qr{provider "openai" at http://\*\*\*\@127\.0\.0\.1:$port/v1$}),
   'openai base url logged masked');
ok(scalar $t->log_lines('worker', qr{provider "ollama" at http://\*\*\*\@127\.0\.0\.1:$port$}),
   'ollama base url logged masked');
ok(scalar $t->log_lines('worker', qr{provider "anthropic" at http://127\.0\.0\.1:$port/v1$}),
   'plain base url logged whole');

my $r = $t->chat(content => 'user info in base url');
is($r->{status}, 200, 'user info base url chat status');

is(join("\n", $t->log_lines('worker', qr/\Q$password\E/)), '',
   'base url password not logged');

$t->finish;
