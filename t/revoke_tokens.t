#!/usr/bin/perl

# Revoking one client token: the tokens list, POST /tokens/{jti}/revoke,
# the chat rejected at once and after an nginx restart (the worker checks
# its own set of revoked ids), and every token revoked with its key. Also
# the worker's input checks: U+0000 in strings, repeated members, HEAD.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_LIMITS_SYNC_MS => 60000 });
$t->wait_keys_loaded;

my $secret = 'sk-revoke-' . join('', map { ('a'..'z')[rand 26] } 1 .. 24);
my $key_id = $t->add_key(secret => $secret, label => 'revoke');

sub issue {
    my $r = $t->admin_via_nginx('POST', '/tokens',
        json => { key_id => $key_id, models => [ 'openai/gpt-4o-mini' ] });
    is($r->{status}, 201, 'token issued');
    return $r->{json} // {};
}

my $one = issue();
my $two = issue();

is($t->chat(key => $one->{token})->{status}, 200, 'token chat before revoke');

my $r = $t->admin('GET', '/tokens');
is($r->{status}, 200, 'tokens list status');
my ($row) = grep { $_->{jti} eq $one->{jti} } @{ $r->{json} // [] };
ok($row, 'tokens list has the token');
is($row && $row->{key_id}, $key_id, 'tokens list key_id');
is_deeply($row && $row->{models}, [ 'openai/gpt-4o-mini' ], 'tokens list models');
is($row && $row->{revoked_at}, undef, 'tokens list not revoked');
unlike($r->{body}, qr/\Q$one->{token}\E/, 'tokens list without the token');

$r = $t->admin('POST', "/tokens/$one->{jti}/revoke");
is($r->{status}, 200, 'token revoke status');
is($r->{json}{expires_at}, $one->{expires_at}, 'token revoke expires_at');
is($t->admin('POST', "/tokens/$one->{jti}/revoke")->{status}, 404,
   'token revoke twice 404');

is($t->chat(key => $one->{token})->{status}, 401, 'revoked token chat 401');
is($t->chat(key => $two->{token})->{status}, 200, 'other token still works');

# The sync period is a minute, so only the worker's set can catch this.
$t->restart_nginx();
is($t->chat(key => $one->{token})->{status}, 401,
   'revoked token 401 right after nginx restart');

$r = $t->admin('DELETE', "/keys/$key_id");
is($r->{status}, 200, 'key revoke status');
ok($t->wait_for(sub {
    my $l = $t->admin('GET', '/tokens')->{json} // [];
    my ($x) = grep { $_->{jti} eq $two->{jti} } @$l;
    $x && defined $x->{revoked_at};
}, 5), 'key revoke revokes its tokens');
is($t->chat(key => $two->{token})->{status}, 401, 'token of revoked key 401');

# U+0000 and repeated members.

$r = $t->admin('POST', '/keys', body =>
    '{"provider":"openai","label":"x","secret":"sk-abc\u0000def"}');
is($r->{status}, 400, 'key secret with NUL 400');
like($r->{json}{error}{message}, qr/"secret".*U\+0000/, 'key secret NUL named');

$r = $t->admin('POST', '/keys', body =>
    '{"provider":"openai","label":"x","label":"y","secret":"sk-abcdef"}');
is($r->{status}, 400, 'key repeated member 400');
like($r->{json}{error}{message}, qr/"label" appears more than once/,
     'key repeated member named');

$r = $t->admin('PUT', '/limits/ip:192.0.2.9',
    body => '{"per_minute":5,"per_minute":500}');
is($r->{status}, 400, 'limits repeated member 400');

$r = $t->admin('POST', '/users', body =>
    '{"email":"a\u0000@example.com","password":"long-password-1","role":"viewer"}');
is($r->{status}, 400, 'user email with NUL 400');

$r = $t->request('POST', '/v1/chat/completions',
    headers => { Authorization => 'Bearer ' . $t->key },
    body => '{"model":"openai/gpt-4o-mini\u0000x","messages":[{"role":"user","content":"hi"}]}');
is($r->{status}, 400, 'chat model with NUL 400');
like($r->{json}{error}{message}, qr/"model".*U\+0000/, 'chat model NUL named');

# HEAD like GET.

$r = $t->worker_request('HEAD', '/healthz');
is($r->{status}, 200, 'healthz HEAD 200');
is($r->{body}, '', 'healthz HEAD no body');
$r = $t->worker_request('HEAD', '/admin/api/limits',
    headers => { 'X-Admin-Token' => $t->admin_token });
is($r->{status}, 200, 'admin HEAD 200');

$t->finish;
