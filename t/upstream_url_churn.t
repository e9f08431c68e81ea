#!/usr/bin/perl

# More stored keys with their own base URLs than the table of parsed URLs
# has slots (32), called at once by several clients: complete and streamed
# chats, clients that hang up mid-stream, calls that time out, keys revoked
# and added while calls run. Each call must reach its own key's URL: the
# emulator records the path and a hash of the credential of every call,
# and key i has base URL /k<i>/v1 and secret sk-churn-<i>-....

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Chatgate::Test;

my $t = Chatgate::Test->new(env => { CHATGATE_REQUEST_TIMEOUT_MS => 1500 });
my $emu = '127.0.0.1:' . $t->emulator_port;
my $json = JSON::PP->new->canonical;

my (%index_of_hash, @ids);

sub secret { "sk-churn-$_[0]-" . ('c' x 16) }

sub add_churn_key {
    my ($i) = @_;
    my $id = $t->add_key(label => "churn $i", secret => secret($i),
        base_url => "http://$emu/k$i/v1");
    $index_of_hash{ $t->sha256(secret($i)) } = $i;
    return $id;
}

push @ids, add_churn_key($_) for 0 .. 47;

# One chat with X-Key-Id over a raw connection to nginx. mode: "complete",
# "stream", "hangup" (stream, close after the first bytes of the body) or
# "timeout" (held past CHATGATE_REQUEST_TIMEOUT_MS). Returns the status.
sub churn_chat {
    my ($id, $mode) = @_;
    my $stream = $mode ne 'complete' && $mode ne 'timeout';
    my $content = {
        complete => '[emu delay_ms=50] churn',
        stream   => '[emu chunks=5 chunk_delay_ms=20] churn',
        hangup   => '[emu words=20 chunks=20 chunk_delay_ms=100] churn',
        timeout  => '[emu delay_ms=3000] churn',
    }->{$mode};
    my $body = $json->encode({ model => 'gpt-4o-mini',
        messages => [ { role => 'user', content => $content } ],
        ($stream ? (stream => JSON::PP::true) : ()) });

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port)
        or return 0;
    print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nConnection: close\r\n"
        . "X-Key-Id: $id\r\nX-Admin-Token: " . $t->admin_token . "\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";

    my $raw = '';
    while (sysread($s, my $buf, 4096)) {
        $raw .= $buf;
        last if $mode eq 'hangup' && $raw =~ /\r\n\r\n.*data:/s;
    }
    close $s;

    my ($status) = $raw =~ m{^HTTP/1\.\d (\d{3})};
    return $status // 0;
}

my %expected = (complete => 200, stream => 200, hangup => 200,
    timeout => 504);
my @modes = qw(complete stream complete hangup stream complete timeout
    stream);

# Eight clients, each with 24 chats over the keys in its own order, while
# the test revokes some keys and adds others.
my $rounds = 24;
my @revoked = @ids[40 .. 43];
my %revoked = map { $_ => 1 } @revoked;
for my $c (0 .. 7) {
    $t->in_background("client$c", sub {
        my %bad;
        for my $n (0 .. $rounds - 1) {
            my $k = ($c * 7 + $n * 13) % 48;
            my $mode = $modes[($c + $n) % @modes];
            my $status = churn_chat($ids[$k], $mode);
            next if $revoked{ $ids[$k] } && $status == 403;
            $bad{"$mode $status"}++ if $status != $expected{$mode};
        }
        return \%bad;
    });
}

sleep 1;
for my $id (@revoked) {
    is($t->admin('DELETE', "/keys/$id")->{status}, 200,
       "url churn key $id revoked");
}
my @added = map { add_churn_key($_) } 48 .. 51;

for my $c (0 .. 7) {
    my $bad = $t->result("client$c", 60);
    is($json->encode($bad // { 'no result' => 1 }), '{}',
       "url churn client $c statuses");
}

# The new keys, then every key once more, one at a time.
my $ok = 0;
for my $id (@added, @ids[0 .. 39, 44 .. 47]) {
    $ok++ if churn_chat($id, 'complete') == 200;
}
is($ok, 48, 'url churn calls in turn answered');

my ($mismatch, $checked) = (0, 0);
for my $r ($t->emulator_requests()) {
    next unless ($r->{method} // '') eq 'POST';
    my ($k) = ($r->{path} // '') =~ m{^/k(\d+)/v1/chat/completions$};
    my $i = $index_of_hash{ $r->{credential_sha256} // '' };
    $checked++;
    $mismatch++ if !defined $k || !defined $i || $k != $i;
}
ok($checked > 100, 'url churn emulator calls checked');
is($mismatch, 0, 'url churn every call at its key url');
ok($t->is_running('worker'), 'url churn worker running');

$t->finish();
