#!/usr/bin/perl

# A key revoked while a rotation of it is being written must stay revoked
# in the worker's memory too. DELETE wipes the key from memory at once and
# then waits for its UPDATE, which waits for the rotation's row lock. When
# the rotation's UPDATE commits first, its result must not put the new
# secret back into memory, or chats keep using a key that the database
# shows as revoked until the worker restarts.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $old_secret = 'sk-revoke-rotate-old-' . join('', map { ('a'..'z')[rand 26] } 1 .. 16);
my $new_secret = 'sk-revoke-rotate-new-' . join('', map { ('a'..'z')[rand 26] } 1 .. 16);
my $key_id = $t->add_key(secret => $old_secret, label => 'revoke during rotate');

sub chat_with_key {
    my ($content) = @_;
    return $t->chat(key => undef, content => $content,
        headers => { 'X-Admin-Token' => $t->admin_token, 'X-Key-Id' => $key_id });
}

my $r = chat_with_key('before the rotation');
is($r->{status}, 200, 'stored key chat status');

# Holds every UPDATE of provider_keys that leaves the key unrevoked, which
# is the rotation's, for 1 s while it holds the row lock.
$t->execute(<<'SQL');
CREATE FUNCTION test_slow_rotate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NULL THEN
        PERFORM pg_sleep(1);
    END IF;
    RETURN NEW;
END $$;
SQL
$t->execute('CREATE TRIGGER test_slow_rotate BEFORE UPDATE ON provider_keys'
    . ' FOR EACH ROW EXECUTE FUNCTION test_slow_rotate()');

$t->in_background('rotate', sub {
    my $r = $t->admin('POST', "/keys/$key_id/rotate",
        json => { secret => $new_secret });
    return { status => $r->{status} };
});

ok($t->wait_for(sub {
    my ($row) = $t->query("SELECT count(*) AS n FROM pg_stat_activity"
        . " WHERE query LIKE 'UPDATE provider_keys SET ciphertext%'"
        . " AND wait_event = 'PgSleep'");
    return $row->{n};
}), 'rotation update waiting');

$r = $t->admin('DELETE', "/keys/$key_id");
is($r->{status}, 200, 'revoke status');

my $rotate = $t->result('rotate');
is($rotate && $rotate->{status}, 200, 'rotation committed before revoke');

my ($row) = $t->query("SELECT revoked_at IS NOT NULL AS revoked,"
    . " ciphertext IS NULL AS wiped FROM provider_keys WHERE id = '$key_id'");
ok($row->{revoked}, 'key revoked in database');
ok($row->{wiped}, 'key ciphertext removed');

my $before = () = $t->emulator_requests_with($t->sha256($new_secret));
$r = chat_with_key('after the revoke');
is($r->{status}, 403, 'revoked key chat status');
like($r->{json} && $r->{json}{error}{message} // '', qr/unknown or revoked/,
    'revoked key chat message');
my $after = () = $t->emulator_requests_with($t->sha256($new_secret));
is($after - $before, 0, 'rotated secret not sent');

ok(scalar $t->log_lines('worker', qr/key \Q$key_id\E version 2 is stored, but the key was revoked meanwhile/),
    'revoke during rotate logged');

$r = $t->admin('GET', '/keys');
ok(!grep({ $_->{id} eq $key_id } @{ $r->{json} // [] }), 'revoked key not listed');

$t->finish;
