#!/usr/bin/perl

# The worker parses each provider URL once and keeps up to 32 of them,
# reusing the slot of the least recently called one, and pooled curl handles
# keep their options from call to call. Calls to more URLs than that, at
# once and in turn, URLs in odd forms, proxy variables in the environment and
# a pooled handle moving between a chat's POST and the rule pushes' PATCH,
# GET and PUT on a unix socket must all work as with a fresh handle.

use strict;
use warnings;

use IO::Socket::IP;
use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $emu = '127.0.0.1:' . $t->emulator_port;

# curl must not use a proxy from the environment: CHATGATE_PROXY is the
# only proxy setting. This port has no listener, so a proxied call fails.
my $dead = 'http://127.0.0.1:' . Chatgate::Test::free_port();
is($t->stop_process('worker', 'TERM'), 0, 'upstream urls worker stopped');
{
    local $ENV{http_proxy} = $dead;
    local $ENV{HTTP_PROXY} = $dead;
    local $ENV{https_proxy} = $dead;
    local $ENV{all_proxy} = $dead;
    local $ENV{ALL_PROXY} = $dead;
    local $ENV{no_proxy} = 'example.invalid';
    $t->start_worker();
}
$t->wait_keys_loaded();

sub key_chat {
    my ($id, %opt) = @_;
    return $t->chat(key => undef, headers => { 'X-Key-Id' => $id,
        'X-Admin-Token' => $t->admin_token }, %opt);
}

# 40 stored keys, each with its own spelling of the emulator's /v1: more
# than the worker parses once and keeps, so the last calls give curl the
# string. Dot segments are removed by both paths.
my (@ids, %secret);
for my $i (0 .. 39) {
    my $s = "sk-url-$i-" . ('x' x 16);
    my $url = $i % 2 ? "http://$emu/k$i/../v1/" : "http://$emu/k$i/./../v1";
    my $id = $t->add_key(label => "url $i", secret => $s, base_url => $url);
    push @ids, $id;
    $secret{$id} = $s;
}

# Twice round, so the cached and the uncached URLs are each called again
# on handles that another URL used last.
my $ok = 0;
for my $round (1 .. 2) {
    for my $id (@ids) {
        my $r = key_chat($id, model => 'gpt-4o-mini',
            content => "round $round");
        $ok++ if $r->{status} == 200;
    }
}
is($ok, 80, 'upstream urls 40 base urls answered');

# All 40 at once, each held 500 ms by the emulator: the running calls keep
# their parsed URLs, so the URLs past the 32 slots go to curl as strings.
# Then a round in turn, in which new URLs take the slots of the least
# recently called ones.
for my $i (0 .. $#ids) {
    my $id = $ids[$i];
    $t->in_background("concurrent$i", sub {
        my $r = key_chat($id, model => 'gpt-4o-mini',
            content => '[emu delay_ms=500] concurrent');
        return { status => $r->{status} };
    });
}
my $concurrent = 0;
for my $i (0 .. $#ids) {
    my $res = $t->result("concurrent$i", 30);
    $concurrent++ if $res && ($res->{status} // 0) == 200;
}
is($concurrent, 40, 'upstream urls 40 concurrent calls answered');

$ok = 0;
for my $id (reverse @ids) {
    my $r = key_chat($id, model => 'gpt-4o-mini', content => 'round 3');
    $ok++ if $r->{status} == 200;
}
is($ok, 40, 'upstream urls reused slots answered');

my @paths = map { $_->{path} }
    grep { ($_->{method} // '') eq 'POST' } $t->emulator_requests();
is(scalar(grep { $_ ne '/v1/chat/completions' } @paths), 0,
   'upstream urls every path normalized');

# user:password in the URL, and a port curl cannot parse.
my $userinfo = $t->add_key(label => 'userinfo', secret => 'sk-userinfo-' . ('u' x 16),
    base_url => "http://user:url-password\@$emu/v1");
my $r = key_chat($userinfo, model => 'gpt-4o-mini', content => 'userinfo');
is($r->{status}, 200, 'upstream urls userinfo status');

$r = $t->admin('POST', '/keys', json => { provider => 'openai',
    label => 'bad port', secret => 'sk-badport-' . ('b' x 16),
    base_url => 'http://127.0.0.1:99999/v1' });
is($r->{status}, 400, 'upstream urls bad port rejected');
unlike($r->{body}, qr/sk-badport/, 'upstream urls bad port no key');

# A provider on [::1]: a second emulator, when the host has IPv6 loopback.
SKIP: {
    my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
        Proto => 'tcp', Listen => 1)
        or skip('no IPv6 loopback on this host', 2);
    my $port6 = $probe->sockport;
    close $probe;

    $t->spawn('emulator6', $t->dir . '/emulator6.log', undef,
        ($ENV{CHATGATE_BUILD} // 'build') . '/chatgate-emulator', '--listen', "[::1]:$port6");
    ok($t->wait_for(sub {
        IO::Socket::IP->new(PeerHost => '::1', PeerPort => $port6) }, 10),
       'upstream urls ipv6 emulator up');

    my $v6 = $t->add_key(label => 'ipv6', secret => 'sk-ipv6-' . ('6' x 16),
        base_url => "http://[::1]:$port6/v1/");
    $r = key_chat($v6, model => 'gpt-4o-mini', content => 'ipv6');
    is($r->{status}, 200, 'upstream urls ipv6 status');
    $t->stop_process('emulator6', 'TERM');
}

# A rule pushed to the module (PUT, then the worker's PATCH and GET on the
# control socket) between chats (POST) on the same pooled handles.
for my $n (1 .. 3) {
    my $put = $t->admin('PUT', '/limits/global',
        json => { per_minute => 100000 + $n, per_day => 1000000 });
    ok($put->{status} >= 200 && $put->{status} < 300,
       "upstream urls limit put $n");
    $r = $t->chat(content => "after push $n");
    is($r->{status}, 200, "upstream urls chat after push $n");
}

my ($last) = reverse $t->emulator_requests();
is($last && $last->{method}, 'POST', 'upstream urls last chat is a POST');

my $log = $t->read_log('worker');
for my $s (values %secret, 'sk-userinfo', 'sk-badport', 'sk-ipv6', 'url-password') {
    unlike($log, qr/\Q$s\E/, "upstream urls log has no $s") or last;
}
unlike($log, qr/\Q$dead\E/, 'upstream urls no proxy used');

$t->finish();
