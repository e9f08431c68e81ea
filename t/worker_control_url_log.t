#!/usr/bin/perl

# CHATGATE_CONTROL_URL, like a provider base URL, may carry a password in
# its user info. The worker names that URL in its start line, in the
# errors of failed rule pushes and in its refusal of an invalid value; each
# must show the user info as "***@".

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $password = 'control-pw-' . join('', map { ('a'..'z')[rand 26] } 1 .. 16);

# Nothing listens on this port, so every push fails and is logged.
my $port = Chatgate::Test::free_port();

$t->stop_process('worker');
truncate $t->dir . '/worker.log', 0;
$t->start_worker(
    CHATGATE_CONTROL_URL    => "http://ctl:$password\@127.0.0.1:$port/chatgate/control",
    CHATGATE_LIMITS_SYNC_MS => 100,
);

ok(scalar $t->log_lines('worker',
       qr{limits sync to http://\*\*\*\@127\.0\.0\.1:$port/chatgate/control every 100 ms}),
   'control url logged masked at start');

ok($t->wait_for(sub {
       scalar $t->log_lines('worker', qr{to http://\*\*\*\@127\.0\.0\.1:$port/chatgate/control failed})
   }, 10),
   'failed push names the masked url');

$t->stop_process('worker');

# An invalid value stops the worker; its message quotes the value masked.
my ($status, $output) = $t->worker_command(undef, 'migrate');
is($status, 0, 'valid settings migrate status');

$t->set_worker_env(CHATGATE_CONTROL_URL => "ftp://ctl:$password\@127.0.0.1:$port/x");
($status, $output) = $t->worker_command(undef, 'migrate');
isnt($status, 0, 'invalid control url status');
like($output, qr{invalid CHATGATE_CONTROL_URL "ftp://\*\*\*\@127\.0\.0\.1:$port/x"},
     'invalid control url quoted masked');
unlike($output, qr/\Q$password\E/, 'invalid control url password not printed');

is(join("\n", $t->log_lines('worker', qr/\Q$password\E/)), '',
   'control url password not logged');

$t->finish;
