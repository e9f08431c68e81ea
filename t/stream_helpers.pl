# Helpers for the t/stream_*.t scripts: a streamed chat over a raw TCP
# connection to nginx, read as it arrives, so the scripts can time events,
# read slowly or hang up in the middle. Loaded with "require".

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(sleep time);

my $STREAM_JSON = JSON::PP->new->utf8->canonical;

# POSTs a chat with "stream": true and reads the response. Options: model,
# content, body (a whole structure instead), path (default
# /v1/chat/completions), key, tag, timeout (seconds, default 20),
# hang_up_after (close after this many events), read_delay (seconds to
# sleep after each read), read_size (bytes per read), rcvbuf (SO_RCVBUF set
# before connecting), headers (more request headers, a hash). Returns
# { status, headers, events (data fields), times (arrival of each event,
# seconds after the request), complete (the last chunk arrived), elapsed,
# tag }.
sub stream_chat {
    my ($t, %opt) = @_;

    my $body = $opt{body} // {
        model    => $opt{model} // 'openai/gpt-4o-mini',
        messages => [ { role => 'user', content => $opt{content} // 'hello' } ],
        stream   => JSON::PP::true,
        %{ $opt{extra} // {} },
    };
    my $json = $STREAM_JSON->encode($body);
    my $tag = $opt{tag} // sprintf('%08x%08x', int rand 2**32, int rand 2**32);
    my $key = exists $opt{key} ? $opt{key} : $t->key;
    my $path = $opt{path} // '/v1/chat/completions';

    my $s = IO::Socket::INET->new(Proto => 'tcp')
        or die "socket failed: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, $opt{rcvbuf}) if $opt{rcvbuf};
    connect($s, pack_sockaddr_in($t->port, inet_aton('127.0.0.1')))
        or die "connect to nginx on port " . $t->port . " failed: $!";
    $s->autoflush(1);

    my $request = "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($json) . "\r\nX-Test-Tag: $tag\r\nConnection: close\r\n"
        . (defined $key ? "Authorization: Bearer $key\r\n" : '')
        . join('', map { "$_: $opt{headers}{$_}\r\n" }
            sort keys %{ $opt{headers} // {} })
        . "\r\n$json";

    my $started = time;
    print $s $request;

    my %r = (events => [], times => [], complete => 0, tag => $tag,
        status => 0, headers => {});
    my ($raw, $chunked, $body_text, $head_done) = ('', 0, '', 0);
    my $deadline = $started + ($opt{timeout} // 20);
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;

    while (time < $deadline) {
        my $rout = $rin;
        next unless select($rout, undef, undef, 0.05);
        my $n = sysread($s, my $buf, $opt{read_size} // 65536);
        last unless $n;
        $raw .= $buf;

        if (!$head_done) {
            my $end = index($raw, "\r\n\r\n");
            next if $end < 0;
            my ($status_line, @lines) = split /\r\n/, substr($raw, 0, $end);
            ($r{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
            for (@lines) {
                my ($name, $value) = split /:\s*/, $_, 2;
                $r{headers}{ lc $name } = $value;
            }
            $chunked = ($r{headers}{'transfer-encoding'} // '') =~ /chunked/i;
            $raw = substr($raw, $end + 4);
            $head_done = 1;
        }

        if ($chunked) {
            while ($raw =~ /^([0-9a-fA-F]+)\r\n/) {
                my ($size, $skip) = (hex $1, length($1) + 2);
                last if length($raw) < $skip + $size + 2;
                $body_text .= substr($raw, $skip, $size);
                $raw = substr($raw, $skip + $size + 2);
                $r{complete} = 1 if $size == 0;
            }
        } else {
            $body_text .= $raw;
            $raw = '';
        }

        while ((my $end = index($body_text, "\n\n")) >= 0) {
            my $event = substr($body_text, 0, $end);
            $body_text = substr($body_text, $end + 2);
            my @data = map { /^data: ?(.*)$/s ? $1 : () } split /\n/, $event;
            next unless @data;
            push @{ $r{events} }, join("\n", @data);
            push @{ $r{times} }, time - $started;
        }

        last if $r{complete};
        if (defined $opt{hang_up_after}
            && @{ $r{events} } >= $opt{hang_up_after})
        {
            $r{hung_up} = time - $started;
            last;
        }
        sleep $opt{read_delay} if $opt{read_delay};
    }

    close $s;
    $r{rest} = $body_text;
    $r{elapsed} = time - $started;
    return \%r;
}

# Decodes the JSON events of a stream; [DONE] and undecodable ones are
# left out.
sub stream_json {
    my ($r) = @_;
    return map { my $v = eval { $STREAM_JSON->decode($_) }; $v ? ($v) : () }
        grep { $_ ne '[DONE]' } @{ $r->{events} };
}

# Joins the delta contents of the chunk events.
sub stream_content {
    my ($r) = @_;
    my $text = '';
    for my $chunk (stream_json($r)) {
        my $delta = $chunk->{choices} && $chunk->{choices}[0]
            ? $chunk->{choices}[0]{delta} : undef;
        $text .= $delta->{content} if $delta && defined $delta->{content};
    }
    return $text;
}

# Returns the chat_logs row of a streamed request, found by its tag.
sub stream_log_row {
    my ($t, $r) = @_;
    my $rid = $t->request_id($r->{tag}) or return undef;
    return $t->log_row($rid);
}

1;
