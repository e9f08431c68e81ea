#!/usr/bin/perl

# Stored provider keys: the keys API and its role check, chats through nginx
# with X-Key-Id and the admin token, X-Key-Id alone rejected, rotation, revocation, a tampered ciphertext and a rekey
# under traffic. No stored secret, the KMS key or the admin token may show
# up in a log, a response or a chat_logs row.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;
use Time::HiRes qw(sleep time);

my $t = Chatgate::Test->new();
$t->wait_keys_loaded;

my $secret_a = 'sk-stored-a-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my $secret_b = 'sk-stored-b-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my $secret_c = 'sk-stored-c-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my $secret_r = 'sk-rotated-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my @responses;

# Writes the worker's env file from a hash of settings.
sub write_env {
    my (%e) = @_;
    my $file = $t->dir . '/chatgate.env';
    open my $out, '>', $file or die "open $file: $!";
    print $out "$_=$e{$_}\n" for sort keys %e;
    close $out;
}

sub keep { push @responses, $_[0]{body} // $_[0]{content} // ''; $_[0] }

# Create and validate.

my $r = keep($t->admin('POST', '/keys', json => {
    provider => 'openai', label => 'team a', secret => $secret_a }));
is($r->{status}, 201, 'key create status');
my $id_a = $r->{json}{id};
like($id_a // '', qr/^[0-9a-f-]{36}$/, 'key create id');
is($r->{json}{fingerprint}, substr($secret_a, -4), 'key create fingerprint');
is($r->{json}{provider}, 'openai', 'key create provider');
ok(!exists $r->{json}{secret}, 'key create no secret');

my $id_b = $t->add_key(provider => 'anthropic', label => 'team b',
    secret => $secret_b);
my $id_c = $t->add_key(provider => 'openrouter', label => 'custom url',
    secret => $secret_c,
    base_url => 'http://127.0.0.1:' . $t->emulator_port . '/v1/');

$r = keep($t->admin('POST', '/keys', json => {
    provider => 'nope', label => '', secret => 'has space' }));
is($r->{status}, 400, 'key create invalid status');
for my $field (qw(provider label secret)) {
    like($r->{json}{error}{message}, qr/\b$field:/,
        "key create invalid reason $field");
}

# A label is one line of printable text: no control character a terminal
# would obey (C0, DEL, C1) and no line or paragraph separator.
for my $case ([ 'escape', "team\e[2J" ], [ 'tab', "team\ta" ],
              [ 'C1 CSI', "team\x{9b}2J" ], [ 'next line', "team\x{85}a" ],
              [ 'line separator', "team\x{2028}a" ]) {
    my ($name, $label) = @$case;
    $r = keep($t->admin('POST', '/keys', json => {
        provider => 'openai', label => $label, secret => 'sk-label-test' }));
    is($r->{status}, 400, "key label $name status");
    like($r->{json}{error}{message}, qr/label:/, "key label $name reason");
}

$r = keep($t->admin('POST', '/keys', json => {
    provider => 'openai', label => "caf\x{e9} team", secret => 'sk-label-test' }));
is($r->{status}, 201, 'key label non-ascii status');
is($r->{json}{label}, "caf\x{e9} team", 'key label non-ascii kept');
is($t->admin('DELETE', "/keys/$r->{json}{id}")->{status}, 200,
   'key label non-ascii revoked');

$r = keep($t->admin('POST', '/keys', body => '{"provider":'));
is($r->{status}, 400, 'key create malformed json');

$r = keep($t->admin('POST', '/keys', json => {
    provider => 'openai', label => 'x', secret => 'k', base_url => 'ftp://x' }));
is($r->{status}, 400, 'key create invalid base_url');

# Base URLs whose calls could not reach a provider: no host, a port curl
# cannot parse, or a query or fragment that the API path would follow.
for my $url ('http://', 'https:///', 'http:///v1', 'http://127.0.0.1:99999/v1',
    'http://127.0.0.1:1:/v1', 'http://127.0.0.1/v1?x=1', 'http://127.0.0.1/v1#f')
{
    $r = keep($t->admin('POST', '/keys', json => {
        provider => 'openai', label => 'x', secret => 'k', base_url => $url }));
    is($r->{status}, 400, "key create invalid base_url $url");
}

$r = keep($t->admin('POST', '/keys', json => { provider => 'openai',
    label => 'x', secret => 'k', base_url => 'http://user:pw@[::1]:8080/v1/' }));
is($r->{status}, 201, 'key create ipv6 base_url with userinfo');
is($r->{json}{base_url}, 'http://***@[::1]:8080/v1',
   'key create ipv6 base_url trimmed, user info hidden');
is($t->admin('DELETE', "/keys/$r->{json}{id}")->{status}, 200,
   'key create ipv6 base_url revoked');

# List.

$r = keep($t->admin('GET', '/keys'));
is($r->{status}, 200, 'key list status');
is(scalar @{ $r->{json} // [] }, 3, 'key list count');
my ($listed) = grep { $_->{id} eq $id_a } @{ $r->{json} };
is($listed->{label}, 'team a', 'key list label');
ok($listed->{usable}, 'key list usable');
unlike($r->{body}, qr/\Q$secret_a\E|\Q$secret_b\E|"secret"/, 'key list no secrets');

# Roles: admin only, on the worker's socket as nginx would vouch.

for my $role (qw(viewer operator)) {
    $r = $t->worker_request('GET', '/admin/api/keys', role => $role);
    is($r->{status}, 403, "key list $role forbidden");
    $r = $t->worker_request('POST', '/admin/api/keys', role => $role,
        json => { provider => 'openai', label => 'x', secret => 'sk-x' });
    is($r->{status}, 403, "key create $role forbidden");
}
is($t->worker_request('GET', '/admin/api/keys', role => 'admin')->{status},
    200, 'key list admin role');
is($t->worker_request('GET', '/admin/api/keys')->{status}, 401,
    'key list no credential');
is($t->worker_request('GET', '/admin/api/keys',
    headers => { 'X-Admin-Token' => 'wrong-token-wrong-token' })->{status},
    401, 'key list wrong admin token');

# Chats with stored keys through nginx.

sub key_chat {
    my ($id, %opt) = @_;
    return keep($t->chat(key => undef, headers => { 'X-Key-Id' => $id,
        'X-Admin-Token' => $t->admin_token }, %opt));
}

# A base URL's user info may hold a password: answers hide it, and the
# provider calls still use it.
my $emu = '127.0.0.1:' . $t->emulator_port;
$r = keep($t->admin('POST', '/keys', json => { provider => 'openai',
    label => 'user info', secret => 'sk-userinfo-key',
    base_url => "http://ops:pw-hidden\@$emu/v1" }));
is($r->{status}, 201, 'key user info create status');
is($r->{json}{base_url}, "http://***\@$emu/v1", 'key user info create hidden');
my $id_u = $r->{json}{id};
$r = keep($t->admin('GET', '/keys'));
my ($listed_u) = grep { ($_->{id} // '') eq ($id_u // '') } @{ $r->{json} // [] };
is($listed_u && $listed_u->{base_url}, "http://***\@$emu/v1", 'key user info list hidden');
unlike($r->{body} // '', qr/pw-hidden/, 'key user info list no password');
is(key_chat($id_u, content => 'user info')->{status}, 200,
   'key user info chat status');
$r = keep($t->admin('POST', "/keys/$id_u/rotate", json => { secret => 'sk-userinfo-2' }));
is($r->{status}, 200, 'key user info rotate status');
is($r->{json}{base_url}, "http://***\@$emu/v1", 'key user info rotate hidden');
is(key_chat($id_u, content => 'user info rotated')->{status}, 200,
   'key user info rotated chat status');
is($t->admin('DELETE', "/keys/$id_u")->{status}, 200, 'key user info revoked');
unlike($t->read_log('worker'), qr/pw-hidden/, 'key user info not in the worker log');

# A key id is no secret: without a credential nginx rejects it, and
# neither the provider nor the log writer sees the request.
$r = keep($t->chat(key => undef, headers => { 'X-Key-Id' => $id_a },
    content => 'key id alone'));
is($r->{status}, 401, 'stored key id alone status');
is($r->{json} && $r->{json}{error}{type}, 'authentication_error',
    'stored key id alone type');
is(scalar $t->emulator_requests_with($t->sha256($secret_a)), 0,
    'stored key id alone no provider call');

$r = key_chat($id_a, model => 'gpt-4o-mini', content => 'stored key a');
is($r->{status}, 200, 'stored key chat status');
my @sent = $t->emulator_requests_with($t->sha256($secret_a));
is(scalar @sent, 1, 'stored key credential_sha256');
my $rid = $t->request_id($r->{tag});
my $row = $rid && $t->log_row($rid);
is($row && $row->{key_id}, $id_a, 'stored key log row key_id');

$r = key_chat($id_b, model => 'claude-3-5-haiku', content => 'stored key b');
is($r->{status}, 200, 'stored key other provider status');
($row) = $t->emulator_requests_with($t->sha256($secret_b));
is($row && $row->{format}, 'anthropic', 'stored key provider from key');

$r = key_chat($id_b, model => 'openai/gpt-4o-mini');
is($r->{status}, 400, 'stored key provider prefix mismatch');

$r = key_chat($id_c, model => 'meta-llama/llama-3', content => 'custom url');
is($r->{status}, 200, 'stored key base_url status');
($row) = $t->emulator_requests_with($t->sha256($secret_c));
like($row && $row->{path}, qr{^/v1/chat}, 'stored key base_url path');

$r = key_chat('00000000-0000-4000-8000-000000000000');
is($r->{status}, 403, 'unknown key id status');
like($r->{json}{error}{message}, qr/unknown or revoked/, 'unknown key id message');

# Rotate.

$r = keep($t->admin('POST', "/keys/$id_a/rotate", json => { secret => $secret_r }));
is($r->{status}, 200, 'key rotate status');
is($r->{json}{key_version}, 2, 'key rotate version');
is($r->{json}{fingerprint}, substr($secret_r, -4), 'key rotate fingerprint');
$r = key_chat($id_a, content => 'after rotate');
is($r->{status}, 200, 'rotated key chat status');
is(scalar $t->emulator_requests_with($t->sha256($secret_r)), 1,
    'rotated key credential used');
is($t->admin('POST', '/keys/00000000-0000-4000-8000-000000000000/rotate',
    json => { secret => 'sk-x' })->{status}, 404, 'key rotate unknown id');

# Revoke.

$r = keep($t->admin('DELETE', "/keys/$id_c"));
is($r->{status}, 200, 'key revoke status');
is(key_chat($id_c, model => 'x')->{status}, 403, 'revoked key chat forbidden');
is($t->admin('DELETE', "/keys/$id_c")->{status}, 404, 'key revoke twice');
is($t->admin('DELETE', '/keys/not-a-uuid')->{status}, 404, 'key revoke bad id');
my ($revoked) = $t->query("SELECT ciphertext, revoked_at FROM provider_keys "
    . "WHERE id = '$id_c'");
ok(!defined $revoked->{ciphertext} && defined $revoked->{revoked_at},
    'key revoke wipes ciphertext');

# BYOK still works.

is(keep($t->chat(content => 'byok'))->{status}, 200, 'byok chat with vault');

# A tampered ciphertext makes only that key unusable.

my ($blob) = map { $_->{ciphertext} } $t->query(
    "SELECT ciphertext FROM provider_keys WHERE id = '$id_b'");
my $flip = substr($blob, 20, 1) eq 'A' ? 'B' : 'A';
substr($blob, 20, 1) = $flip;
$t->execute("UPDATE provider_keys SET ciphertext = '$blob' WHERE id = '$id_b'");

$t->stop_process('worker', 'TERM');
$t->start_worker;
$t->wait_keys_loaded;

ok($t->is_running('worker'), 'tampered key worker up');
ok(scalar $t->log_lines('worker', qr/error.*provider key \Q$id_b\E is unusable/),
    'tampered key error logged');
is(key_chat($id_b, model => 'claude-3-5-haiku')->{status}, 403,
    'tampered key chat forbidden');
is(key_chat($id_a, content => 'after restart')->{status}, 200,
    'other key after restart');
$r = $t->admin('GET', '/keys');
($listed) = grep { $_->{id} eq $id_b } @{ $r->{json} // [] };
ok($listed && !$listed->{usable}, 'tampered key listed unusable');

# Rekey under traffic: chats keep working while every row is re-encrypted.

my $new_kms = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
my $kms_file = $t->dir . '/new-kms.key';
open my $fh, '>', $kms_file or die "open $kms_file: $!";
print $fh "$new_kms\n";
close $fh;

$t->in_background('traffic', sub {
    my %count;
    my $end = time + 3;
    while (time < $end) {
        my $x = $t->chat(key => undef, headers => { 'X-Key-Id' => $id_a,
            'X-Admin-Token' => $t->admin_token }, content => 'during rekey');
        $count{ $x->{status} }++;
    }
    return \%count;
});
sleep 0.5;
my ($rc, $out) = $t->worker_command('', 'rekey', '--new-kms-key-file', $kms_file);
is($rc, 1, 'rekey exit status with one tampered key');
like($out, qr/1 keys re-encrypted, 0 already under the new KMS key, 1 failed/,
    'rekey summary');
my $traffic = $t->result('traffic', 20);
ok($traffic && $traffic->{200} && keys %$traffic == 1, 'rekey traffic all 200')
    or diag(explain($traffic));

my ($ver) = map { $_->{key_version} } $t->query(
    "SELECT key_version FROM provider_keys WHERE id = '$id_a'");
is($ver, 3, 'rekey bumps key_version');

($rc, $out) = $t->worker_command('', 'rekey', '--new-kms-key-file', $kms_file);
like($out, qr/0 keys re-encrypted, 1 already under the new KMS key/,
    'rekey rerun skips');

# Restart with the new KMS key.

my $old_kms = $t->kms_key;
my %env = %{ $t->env };
$env{ADMIN_KMS_KEY} = $new_kms;
write_env(%env);
$t->stop_process('worker', 'TERM');
$t->start_worker;
$t->wait_keys_loaded;
is(key_chat($id_a, content => 'new kms')->{status}, 200,
    'chat after rekey and restart');

# Settings checked at start.

$t->stop_process('worker', 'TERM');
for my $case ([ 'missing', undef ], [ 'malformed', 'abc' ]) {
    my %bad = %env;
    if (defined $case->[1]) { $bad{ADMIN_KMS_KEY} = $case->[1] }
    else { delete $bad{ADMIN_KMS_KEY} }
    write_env(%bad);
    my $log = $t->dir . "/badworker-$case->[0].log";
    $t->spawn("badworker-$case->[0]", $log, { Chatgate::Test::_clean_env() },
        $t->{build} . '/chatgate-worker', 'serve', '--env-file',
        $t->dir . '/chatgate.env');
    my $status = $t->wait_exit("badworker-$case->[0]", 10);
    is(defined $status ? $status >> 8 : -1, 1, "kms key $case->[0] stops worker");
    like($t->read_log("badworker-$case->[0].log"), qr/ADMIN_KMS_KEY/,
        "kms key $case->[0] message");
}
write_env(%env);

# No secret anywhere.

$t->stop;

my @logs = qw(error access worker migrate emulator commands nginx.stderr
    badworker-missing.log badworker-malformed.log);
my $responses = join "\n", @responses;
my %secrets = (
    'stored key a' => $secret_a, 'stored key b' => $secret_b,
    'stored key c' => $secret_c, 'rotated key' => $secret_r,
    'old kms key' => $old_kms, 'new kms key' => $new_kms,
    'jwt secret' => $t->jwt_secret,
);
for my $name (sort keys %secrets) {
    my $s = $secrets{$name};
    is(join(', ', $t->logs_containing($s, @logs)), '', "$name in no log");
    ok(index($responses, $s) < 0, "$name in no response");
}
is(join(', ', $t->logs_containing($t->admin_token, @logs)), '',
    'admin token in no log');

for my $name (sort keys %secrets) {
    is(scalar $t->query("SELECT 1 FROM chat_logs c WHERE "
        . "strpos(row_to_json(c)::text, '$secrets{$name}') > 0"), 0,
        "$name in no chat_logs row");
}
my ($plain) = $t->query("SELECT count(*) AS n FROM provider_keys p WHERE "
    . "strpos(row_to_json(p)::text, '$secret_a') > 0 "
    . "OR strpos(row_to_json(p)::text, '$secret_r') > 0");
is($plain->{n}, 0, 'stored secrets not in provider_keys as plaintext');

$t->finish;
