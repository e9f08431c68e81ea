#!/usr/bin/perl

# A secret given to the worker in its environment is copied and then wiped
# from the environment, so /proc/PID/environ does not show it. The worker
# still uses the copy: a stored key is decrypted with ADMIN_KMS_KEY, and the
# request log reaches PostgreSQL through DATABASE_URL, which may carry the
# database password.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $kms_key = $t->kms_key;
my $secret = 'sk-environ-' . ('e' x 24);

ok(length $kms_key >= 32, 'environ kms key known to the test');

my $id = $t->add_key(secret => $secret);
$t->wait_keys_loaded();

# The env file sets ADMIN_KMS_KEY too; the environment takes precedence,
# so the restarted worker reads the key from its environment.

# The test cluster trusts local connections, so libpq sends no password
# and this one only has to stay out of the environment.
my $db_password = 'environ-db-password-' . ('p' x 12);
my $database_url = $t->env->{DATABASE_URL} =~ s{^postgresql://postgres@}{postgresql://postgres:$db_password\@}r;
isnt($database_url, $t->env->{DATABASE_URL}, 'environ database url has a password');

$t->stop_process('worker');
$t->start_worker(ADMIN_KMS_KEY => $kms_key, DATABASE_URL => $database_url);
$t->wait_keys_loaded();

my $pid = $t->pid('worker');
ok($pid, 'environ worker running');

open my $fh, '<', "/proc/$pid/environ" or die "cannot read /proc/$pid/environ: $!";
my $environ = do { local $/; <$fh> };
close $fh;

like($environ, qr/(?:^|\0)PATH=/, 'environ still lists other variables');
is(index($environ, $kms_key), -1, 'environ kms key value wiped');
unlike($environ, qr/(?:^|\0)ADMIN_KMS_KEY=/, 'environ kms key variable removed');
is(index($environ, $db_password), -1, 'environ database password wiped');
unlike($environ, qr/(?:^|\0)DATABASE_URL=/, 'environ database url variable removed');

my $r = $t->chat(key => undef, content => 'stored key after environ wipe',
    headers => { 'X-Key-Id' => $id, 'X-Admin-Token' => $t->admin_token });
is($r->{status}, 200, 'environ stored key chat status');

my @sent = $t->emulator_requests_with($t->sha256($secret));
cmp_ok(scalar @sent, '>=', 1, 'environ stored key decrypted for the provider');

my $rid = $r->{headers}{'x-request-id'};
ok($rid, 'environ chat has a request id');
ok($t->log_row($rid), 'environ chat logged through the copied url') if $rid;

$t->stop;

is(join(', ', $t->logs_containing($kms_key, qw(worker error nginx.stderr))), '',
   'environ kms key in no log');
is(join(', ', $t->logs_containing($db_password, qw(worker error nginx.stderr))), '',
   'environ database password in no log');

$t->finish;
