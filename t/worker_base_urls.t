#!/usr/bin/perl

# A provider base URL or proxy that cannot serve as one stops the worker at
# start, with the setting named and no password from the URL in the
# message. Before, such a URL failed only at the first chat, with curl's
# words ("Could not resolve host: v1") in a 502.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $build = $ENV{CHATGATE_BUILD} // "$repo/build";
my $worker = "$build/chatgate-worker";
ok(-x $worker, 'base urls worker built');

my $dir = tempdir('chatgate-base-urls-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my @cases = (
    [ OPENAI_BASE_URL     => 'http:///v1',                          'no host' ],
    [ OPENAI_BASE_URL     => 'https://',                            'empty' ],
    [ OPENROUTER_BASE_URL => 'https://openrouter.example/api/v1?x=1', 'query' ],
    [ ANTHROPIC_BASE_URL  => 'https://api.example/v1#top',          'fragment' ],
    [ OLLAMA_BASE_URL     => 'http://127.0.0.1:1:/v1',              'bad port' ],
    [ OPENAI_BASE_URL     => 'https://ops:hunter2@api.example/v1?x', 'password' ],
    [ CHATGATE_PROXY      => 'http:///',                            'proxy' ],
);

for my $i (0 .. $#cases) {
    my ($name, $url, $what) = @{ $cases[$i] };

    my $env = "$dir/case$i.env";
    open my $fh, '>', $env or die "open $env failed: $!";
    print $fh "DATABASE_URL=postgresql:///none?host=$dir\n$name=$url\n";
    close $fh;

    my %clean = %ENV;
    delete @clean{ grep { /^(CHATGATE_|DATABASE_URL$|PG|\w+_BASE_URL$)/ } keys %clean };
    local %ENV = %clean;

    my $pid = open my $run, '-|';
    die "fork failed: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT or exit 126;
        exec $worker, 'serve', '--env-file', $env or exit 127;
    }
    my $out = do { local $/; <$run> } // '';
    close $run;
    my $status = $? >> 8;

    is($status, 1, "base urls $what exit status");
    like($out, qr/invalid \Q$name\E .*with a host and without a query or fragment/,
         "base urls $what message");
    unlike($out, qr/hunter2/, "base urls $what no password");
}

done_testing();
