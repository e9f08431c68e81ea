#!/usr/bin/perl

# The /chat form's key_id field: nginx never reads the body, so the field
# alone must not select a stored key; it may only repeat the key that nginx
# authorized from a client token or the admin token.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();

my $secret = 'sk-form-key-' . ('q' x 24);
my $id = $t->add_key(secret => $secret);
$t->wait_keys_loaded();

my $other = $t->add_key(secret => 'sk-form-other-' . ('r' x 24));
$t->wait_keys_loaded();

sub form {
    my (%opt) = @_;
    return $t->request('POST', '/chat', headers => $opt{headers} // {}, json => {
        provider => 'openai',
        model    => $opt{model},
        messages => [ { role => 'user', content => 'form key check' } ],
        (defined $opt{key_id} ? (key_id => $opt{key_id}) : ()),
    });
}

my $r = form(key_id => $id, model => 'form-key-alone');
is($r->{status}, 401, 'form key_id alone rejected');
is($r->{json}{error}{type}, 'authentication_error', 'form key_id alone error type');
is(scalar $t->emulator_requests_with('form-key-alone'), 0,
    'form key_id alone reaches no provider');

$r = form(key_id => $id, model => 'form-key-byok',
    headers => { Authorization => 'Bearer ' . $t->key });
is($r->{status}, 401, 'form key_id with provider key rejected');

$r = form(key_id => $other, model => 'form-key-mismatch',
    headers => { 'X-Key-Id' => $id, 'X-Admin-Token' => $t->admin_token });
is($r->{status}, 403, 'form key_id other than authorized key');

$r = form(key_id => $id, model => 'form-key-match',
    headers => { 'X-Key-Id' => $id, 'X-Admin-Token' => $t->admin_token });
is($r->{status}, 200, 'form key_id equal to authorized key');

my @seen = $t->emulator_requests_with('form-key-match');
is(scalar @seen, 1, 'form key match reaches the provider once');
is($seen[0]{credential_sha256}, $t->sha256($secret),
    'form key match uses the stored secret');

$t->finish;
