package Chatgate::Provider;

# A small HTTP/1.1 provider for tests that need control over its
# connections: it answers every request with 200 and one fixed body, keeps
# connections alive, and can close idle ones. A test runs serve() in a
# background child and steers it through files in a folder:
#   DIR/provider.close-idle  while it exists, connections idle for
#                            close_after seconds after a response are closed
#   DIR/provider.stop        serve() returns once it exists
# serve() counts what it does in files that read_count() reads:
#   DIR/provider.accepted.NAME  connections accepted on listener NAME
#   DIR/provider.closed         idle connections closed

use strict;
use warnings;

use Exporter qw(import);
use IO::Select;
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(serve read_count wait_count completion_body);

# Returns a chat completion body with id chatcmpl-ID and content CONTENT,
# in the OpenAI format, for serve()'s answer.
sub completion_body {
    my ($id, $content) = @_;

    return qq({"id":"chatcmpl-$id","object":"chat.completion","created":1,)
        . qq("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":)
        . qq("assistant","content":"$content"},"finish_reason":"stop"}],)
        . qq("usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}});
}

# Serves until DIR/provider.stop exists. Options: listeners (name => listening
# socket), dir, answer (the JSON body), close_after (seconds, default 0.15).
# Returns { NAME => connections accepted on it, ..., closed => N }.
sub serve {
    my (%opt) = @_;
    my %listeners = %{ $opt{listeners} };
    my %name_of = map { ($listeners{$_} => $_) } keys %listeners;
    my $dir = $opt{dir};
    my $close_after = $opt{close_after} // 0.15;

    my $select = IO::Select->new(values %listeners);
    my (%buf, %idle_since);
    my %accepted = map { ($_ => 0) } keys %listeners;
    my $closed = 0;

    my $drop = sub {
        my ($fh) = @_;
        $select->remove($fh);
        delete $buf{$fh};
        delete $idle_since{$fh};
        close $fh;
    };

    until (-e "$dir/provider.stop") {
        for my $fh ($select->can_read(0.02)) {
            if (my $name = $name_of{$fh}) {
                my $c = $fh->accept or next;
                $select->add($c);
                $buf{$c} = '';
                _write_count("$dir/provider.accepted.$name", ++$accepted{$name});
                next;
            }

            my $n = sysread($fh, $buf{$fh}, 65536, length $buf{$fh});
            if (!$n) {
                $drop->($fh);
                next;
            }

            _respond($fh, \$buf{$fh}, $opt{answer}) and $idle_since{$fh} = time;
        }

        next unless -e "$dir/provider.close-idle";

        for my $fh ($select->handles) {
            next if $name_of{$fh} || !defined $idle_since{$fh};
            next if time - $idle_since{$fh} < $close_after || length $buf{$fh};
            $drop->($fh);
            _write_count("$dir/provider.closed", ++$closed);
        }
    }

    return { %accepted, closed => $closed };
}

# Answers every whole request in $$buf and removes it; returns how many.
sub _respond {
    my ($fh, $buf, $answer) = @_;
    my $answered = 0;

    while ($$buf =~ /^(.*?\r\n\r\n)/s) {
        my $head = $1;
        my ($length) = $head =~ /^Content-Length:\s*(\d+)/mi;
        $length //= 0;
        last if length($$buf) < length($head) + $length;

        substr($$buf, 0, length($head) + $length) = '';
        print $fh "HTTP/1.1 200 OK\r\n"
            . "Content-Type: application/json\r\n"
            . 'Content-Length: ' . length($answer) . "\r\n\r\n"
            . $answer;
        $answered++;
    }

    return $answered;
}

sub _write_count {
    my ($file, $n) = @_;
    open my $fh, '>', "$file.tmp" or die "open $file.tmp failed: $!";
    print $fh $n;
    close $fh;
    rename "$file.tmp", $file or die "rename $file failed: $!";
}

# Returns the count in $file, 0 before serve() wrote it.
sub read_count {
    my ($file) = @_;
    open my $fh, '<', $file or return 0;
    return <$fh> // 0;
}

# Waits up to 10 s for the count in $file to reach $n; returns the count.
sub wait_count {
    my ($file, $n) = @_;
    my $deadline = time + 10;
    sleep 0.02 while time < $deadline && read_count($file) < $n;
    return read_count($file);
}

1;
