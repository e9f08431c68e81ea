package Chatgate::Test;

# One chatgate stack per test script, in the manner of nginx-tests'
# Test::Nginx: a temporary folder, a database of its own in the cluster that
# scripts/test.sh started, the provider emulator on a free port, the worker
# on a unix socket and nginx with the module on a free 127.0.0.1 port.
#
#   my $t = Chatgate::Test->new(env => { CHATGATE_REQUEST_TIMEOUT_MS => 1000 });
#   my $r = $t->chat(content => 'hello');
#   is($r->{status}, 200, 'chat openai status');
#   $t->finish;     # stops everything, checks the logs, calls done_testing
#
# The secrets live in files under etc/ in the test's folder, as an operator
# keeps them under /etc/chatgate/: admin_token and jwt_secret (mode 0600),
# which nginx and the worker (through ADMIN_TOKEN_FILE and JWT_SECRET_FILE)
# both read, and htpasswd (mode 0640) for the basic auth in front of /admin.
#
# Every process is stopped by its PID, by finish() or, when the script dies,
# by the END block. Core Perl modules only.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::UNIX;
use IPC::Open2 qw(open2);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use ChatgateNginx ();

my $REPO = abs_path(dirname(__FILE__) . '/../../..');
my $JSON = JSON::PP->new->utf8->canonical;

# Processes started by any object of this script: PID => name.
my %RUNNING;
my $OWNER_PID = $$;

# Seconds to wait for a process to become ready or to exit. Sanitizer
# builds start slower, so the bound is generous.
my $START_TIMEOUT = 30;
my $STOP_TIMEOUT = 15;

sub new {
    my ($class, %args) = @_;

    my $pghost = $ENV{CHATGATE_TEST_PGHOST}
        or croak 'CHATGATE_TEST_PGHOST is not set: run the tests through '
            . 'scripts/test.sh BUILD, or start a cluster with '
            . '"scripts/pg.sh start DIR" and export its socket folder';

    my $name = basename($0, '.t');
    $name =~ s/[^a-z0-9]+/_/gi;

    my $self = bless {
        name    => $name,
        build   => abs_path($ENV{CHATGATE_BUILD} // "$REPO/build"),
        repo    => $REPO,
        pghost  => $pghost,
        db      => lc(substr("cg_${name}_$$", 0, 63)),
        key     => 'sk-test-' . _random_hex(16),
        admin_token => 'admin-' . _random_hex(16),
        kms_key => _random_hex(32),
        jwt_secret => _random_hex(32),
        basic_user => 'ops',
        basic_password => _random_hex(12),
        procs   => {},
        http    => HTTP::Tiny->new(timeout => 30, keep_alive => 0),
    }, $class;

    # A unix socket path is limited to 107 bytes, so the folder stays short.
    $self->{dir} = tempdir("chatgate-$name-XXXXXX", TMPDIR => 1, CLEANUP => 0);
    make_path("$self->{dir}/run", "$self->{dir}/conf", "$self->{dir}/tmp",
        "$self->{dir}/etc");

    $self->{socket} = "$self->{dir}/run/worker.sock";
    $self->{control_socket} = "$self->{dir}/run/control.sock";
    $self->{seed_limits} = $args{seed_limits};
    $self->{server_conf} = $args{server_conf} // '';
    $self->_write_secrets();
    $self->{emulator_port} = free_port();
    $self->{port} = free_port();
    $self->{env} = $self->_worker_env($args{env} // {});

    $self->_create_database();
    $self->_migrate();
    $self->_relax_limits() unless $self->{seed_limits};
    $self->start_emulator();
    $self->start_worker();
    $self->start_nginx();

    return $self;
}

# Accessors.

sub dir { $_[0]{dir} }
sub port { $_[0]{port} }
sub emulator_port { $_[0]{emulator_port} }
sub key { $_[0]{key} }
sub admin_token { $_[0]{env}{ADMIN_TOKEN} // $_[0]{admin_token} }
sub kms_key { $_[0]{env}{ADMIN_KMS_KEY} }
sub jwt_secret { $_[0]{env}{JWT_SECRET} // $_[0]{jwt_secret} }
sub basic_user { $_[0]{basic_user} }
sub basic_password { $_[0]{basic_password} }

# The Authorization value of the basic auth in front of /admin.
sub basic_auth {
    my ($self) = @_;
    return 'Basic ' . encode_base64("$self->{basic_user}:$self->{basic_password}", '');
}
sub db { $_[0]{db} }
sub env { $_[0]{env} }
sub url { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '') }
sub pid { $_[0]{procs}{$_[1]} }

sub _random_hex {
    my ($bytes) = @_;
    return join '', map { sprintf '%02x', int rand 256 } 1 .. $bytes;
}

# Returns a TCP port on 127.0.0.1 that nothing listens on right now.
sub free_port {
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1)
        or croak "bind to a free port on 127.0.0.1 failed: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# Writes the secret files that nginx and the worker share, and the htpasswd
# file, with the modes an operator would give them.
sub _write_secrets {
    my ($self) = @_;
    my $etc = "$self->{dir}/etc";

    for my $name (qw(admin_token jwt_secret)) {
        _write_file("$etc/$name", 0600, "$self->{$name}\n");
    }

    # -stdin keeps the password out of the process list
    my $pid = open2(my $out, my $in, 'openssl', 'passwd', '-apr1', '-stdin');
    print $in "$self->{basic_password}\n";
    close $in;
    my $hash = <$out>;
    waitpid $pid, 0;
    ($hash // '') =~ /^\$apr1\$/
        or croak "openssl passwd -apr1 failed (status $?)";
    chomp $hash;

    _write_file("$etc/htpasswd", 0640, "$self->{basic_user}:$hash\n");
}

sub _write_file {
    my ($path, $mode, $text) = @_;

    open my $fh, '>', $path or croak "open $path failed: $!";
    chmod $mode, $path or croak "chmod $path failed: $!";
    print $fh $text;
    close $fh or croak "write $path failed: $!";
}

# Sets the worker's settings for its next start: the defaults plus env.
sub set_worker_env {
    my ($self, %env) = @_;
    $self->{env} = $self->_worker_env(\%env);
}

# A spool file line as cg_spool_encode() writes it: version 1, then the 18
# fields of cg_log_row_t, -1 for a NULL number. Fields: request_id, time_us
# and model, and optionally error_class and error_message.
sub spool_line {
    my ($class, %f) = @_;
    return join("\t", 1, $f{time_us}, $f{request_id}, '127.0.0.1', 'byok',
        'openai', $f{model}, 1, 200, 5, -1, -1, -1, $f{error_class} // '',
        $f{error_message} // '', 0, -1, -1, -1) . "\n";
}

# Writes one spool line per letter of pattern to path: "g" a row the
# database accepts, "B" a row with the model "reject-me", for a CHECK
# constraint to reject. Request ids are "<prefix>-<index>". Returns the
# accepted and the rejected request ids. With long set, rows carry a
# 255-byte error message.
sub write_spool_pattern {
    my ($self, $path, $prefix, $pattern, $long) = @_;
    my $now = int(time * 1e6);
    my (@good, @bad);

    open my $fh, '>', $path or croak "open $path failed: $!";
    my $i = 0;
    for my $c (split //, $pattern) {
        my $rid = "$prefix-$i";
        print $fh $self->spool_line(request_id => $rid, time_us => $now + $i,
            model => $c eq 'B' ? 'reject-me' : 'gpt-4o-mini',
            $long ? (error_class => 'upstream_error', error_message => 'e' x 255) : ());
        push @{ $c eq 'B' ? \@bad : \@good }, $rid;
        $i++;
    }
    close $fh or croak "write $path failed: $!";

    return (\@good, \@bad);
}

sub _worker_env {
    my ($self, $override) = @_;
    my $emu = "http://127.0.0.1:$self->{emulator_port}";

    my %env = (
        CHATGATE_SOCKET             => $self->{socket},
        DATABASE_URL                => "postgresql://postgres@/$self->{db}?host=$self->{pghost}",
        CHATGATE_LOG_LEVEL          => 'debug',
        OPENAI_BASE_URL             => "$emu/v1",
        OPENROUTER_BASE_URL         => "$emu/api/v1",
        ANTHROPIC_BASE_URL          => "$emu/v1",
        OLLAMA_BASE_URL             => $emu,
        CHATGATE_DEFAULT_PROVIDER   => 'openai',
        CHATGATE_CONNECT_TIMEOUT_MS => 2000,
        CHATGATE_REQUEST_TIMEOUT_MS => 10000,
        CHATGATE_MAX_BODY_SIZE      => 1048576,
        CHATGATE_LOG_FLUSH_MS       => 100,
        CHATGATE_SPOOL_PATH         => "$self->{dir}/spool",
        CHATGATE_SQL_DIR            => "$self->{repo}/sql",
        ADMIN_TOKEN_FILE            => "$self->{dir}/etc/admin_token",
        ADMIN_KMS_KEY               => $self->{kms_key},
        JWT_SECRET_FILE             => "$self->{dir}/etc/jwt_secret",
        CHATGATE_CONTROL_URL        => "unix:$self->{control_socket}:/chatgate/control",
        %$override,
    );

    # a script that sets a secret itself replaces the file setting
    for my $name (qw(ADMIN_TOKEN JWT_SECRET)) {
        delete $env{"${name}_FILE"} if exists $override->{$name};
    }

    open my $fh, '>', "$self->{dir}/chatgate.env"
        or croak "open $self->{dir}/chatgate.env failed: $!";
    chmod 0600, "$self->{dir}/chatgate.env";
    print $fh "$_=$env{$_}\n" for sort keys %env;
    close $fh;

    return \%env;
}

# The inherited environment minus any chatgate setting from the caller's
# shell, so that only the test's own settings reach the worker.
sub _clean_env {
    my %env = %ENV;
    for (keys %env) {
        delete $env{$_} if /^(CHATGATE_|DATABASE_URL$|PG|\w+_BASE_URL$)/;
    }
    return %env;
}

sub _psql_argv {
    my ($self, $db) = @_;
    return ('psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
        '-h', $self->{pghost}, '-U', 'postgres', '-d', $db // $self->{db});
}

sub _create_database {
    my ($self) = @_;
    my @cmd = ($self->_psql_argv('postgres'), '-c',
        qq{CREATE DATABASE "$self->{db}"});

    system(@cmd) == 0
        or croak "create database \"$self->{db}\" failed: psql exited with $?";
}

sub _migrate {
    my ($self) = @_;
    my $log = "$self->{dir}/migrate.log";

    my $pid = $self->spawn('migrate', $log,
        { _clean_env(), %{ $self->{env} } },
        "$self->{build}/chatgate-worker", 'migrate');
    my $status = $self->wait_exit('migrate', $START_TIMEOUT);

    $status == 0
        or croak "chatgate-worker migrate exited with status $status:\n"
            . _tail($log);
}

# Lifts the seeded global rule (60 per minute) for scripts that test
# something other than limits, so that their requests are never denied.
# Scripts that test limits pass seed_limits => 1 and set their own rules.
sub _relax_limits {
    my ($self) = @_;
    my @cmd = ($self->_psql_argv(), '-c',
        'UPDATE rate_limits SET per_minute = 1000000, per_hour = NULL, '
        . "burst = NULL, per_day = NULL WHERE scope = 'global'");

    system(@cmd) == 0
        or croak "relax the global rate limit failed: psql exited with $?";
}

# Starts argv in the background with stdout and stderr appended to log and
# the given environment, and records it under name. Returns the PID.
sub spawn {
    my ($self, $name, $log, $env, @argv) = @_;

    my $pid = fork // croak "fork for $name failed: $!";
    if ($pid == 0) {
        %ENV = %$env if $env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        no warnings 'exec';
        exec { $argv[0] } @argv;
        print STDERR "exec $argv[0] failed: $!\n";
        POSIX::_exit(127);
    }

    $self->{procs}{$name} = $pid;
    $self->{logs}{$name} = $log;
    $RUNNING{$pid} = $name;
    return $pid;
}

# Runs code in a forked child, recorded under name. The child writes what
# code returns, as JSON, to a file that result() reads. For a request that
# must be in flight while the test does something else.
sub in_background {
    my ($self, $name, $code) = @_;
    my $file = "$self->{dir}/$name.result";

    my $pid = fork // croak "fork for $name failed: $!";
    if ($pid == 0) {
        my $result = eval { $code->() } // { error => "$@" };
        if (open my $fh, '>', "$file.tmp") {
            print $fh $JSON->encode($result);
            close $fh;
            rename "$file.tmp", $file;
        }
        POSIX::_exit(0);
    }

    $self->{procs}{$name} = $pid;
    $RUNNING{$pid} = $name;
    return $pid;
}

# Waits for the background child name and returns what its code returned.
sub result {
    my ($self, $name, $timeout) = @_;

    $self->wait_exit($name, $timeout // $START_TIMEOUT);
    open my $fh, '<', "$self->{dir}/$name.result" or return undef;
    local $/;
    return $JSON->decode(<$fh>);
}

# Returns 1 while the process recorded as name runs.
sub is_running {
    my ($self, $name) = @_;
    my $pid = $self->{procs}{$name} or return 0;

    return 0 if exists $self->{status}{$name};
    my $r = waitpid($pid, WNOHANG);
    return 1 if $r == 0;

    $self->{status}{$name} = $r == $pid ? $? : -1;
    delete $RUNNING{$pid};
    return 0;
}

# Waits up to timeout seconds for the process name to exit. Returns its wait
# status (as $?), or undef if it still runs.
sub wait_exit {
    my ($self, $name, $timeout) = @_;
    my $deadline = time + ($timeout // $STOP_TIMEOUT);

    while ($self->is_running($name)) {
        return undef if time > $deadline;
        sleep 0.05;
    }
    return $self->{status}{$name};
}

sub signal {
    my ($self, $name, $sig) = @_;
    my $pid = $self->{procs}{$name} or croak "no process named $name";
    kill $sig, $pid;
}

# Sends sig to name, waits, then sends SIGKILL if it is still there.
# Returns the wait status, or undef when it had to be killed.
sub stop_process {
    my ($self, $name, $sig) = @_;

    return $self->{status}{$name} unless $self->is_running($name);

    $self->signal($name, $sig // 'TERM');
    my $status = $self->wait_exit($name, $STOP_TIMEOUT);
    return $status if defined $status;

    diag("$name (PID $self->{procs}{$name}) still runs "
        . "$STOP_TIMEOUT s after SIG" . ($sig // 'TERM') . ', sending SIGKILL');
    $self->signal($name, 'KILL');
    $self->wait_exit($name, 5);
    return undef;
}

sub _tail {
    my ($file, $lines) = @_;
    open my $fh, '<', $file or return "($file: $!)\n";
    my @all = <$fh>;
    splice @all, 0, @all - ($lines // 30) if @all > ($lines // 30);
    return join '', map { "    $_" } @all;
}

# Waits until connect() succeeds, while the process name still runs.
sub _wait_ready {
    my ($self, $name, $connect) = @_;
    my $deadline = time + $START_TIMEOUT;

    while (time < $deadline) {
        $self->is_running($name)
            or croak "$name exited during start-up (status "
                . ($self->{status}{$name} // '?') . "):\n"
                . _tail($self->{logs}{$name});
        my $s = $connect->();
        return 1 if $s;
        sleep 0.05;
    }
    croak "$name did not accept connections within $START_TIMEOUT s:\n"
        . _tail($self->{logs}{$name});
}

sub start_emulator {
    my ($self) = @_;
    my $port = $self->{emulator_port};

    $self->spawn('emulator', "$self->{dir}/emulator.log", undef,
        "$self->{build}/chatgate-emulator", '--listen', "127.0.0.1:$port",
        '--pid-file', "$self->{dir}/run/emulator.pid");
    $self->_wait_ready('emulator', sub {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1);
    });
}

# Starts the worker with the env file. Variables in %env go into its
# environment too, where they take precedence over the file.
sub start_worker {
    my ($self, %env) = @_;
    my $socket = $self->{socket};

    unlink $socket;
    delete $self->{status}{worker};
    $self->spawn('worker', "$self->{dir}/worker.log", { _clean_env(), %env },
        "$self->{build}/chatgate-worker", 'serve',
        '--env-file', "$self->{dir}/chatgate.env");
    $self->_wait_ready('worker', sub {
        -S $socket && IO::Socket::UNIX->new(Peer => $socket);
    });
}

sub start_nginx {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $port = $self->{port};

    $self->_write_nginx_conf();
    $self->spawn('nginx', "$dir/nginx.stderr",
        { %ENV, ChatgateNginx::sanitizer_env($dir) },
        '/usr/sbin/nginx', '-p', "$dir/", '-c', "$dir/conf/nginx.conf",
        '-e', "$dir/error.log");
    $self->{logs}{nginx} = "$dir/error.log";
    $self->_wait_ready('nginx', sub {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1);
    });
}

# Copies the operator's drop-in files from conf.d, pointing the module path
# and the socket folder at this test's build and folder, and writes an
# nginx.conf around them.
sub _write_nginx_conf {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $module_dir = dirname(ChatgateNginx::module_path());

    for my $src (glob "$self->{repo}/conf.d/*") {
        open my $in, '<', $src or croak "open $src failed: $!";
        local $/;
        my $text = <$in>;
        close $in;

        $text =~ s{/usr/lib/nginx/modules/}{$module_dir/}g;
        $text =~ s{/run/chatgate/}{$dir/run/}g;
        $text =~ s{/etc/chatgate/}{$dir/etc/}g;

        # before the first push, as _relax_limits does for the pushed rule
        $text =~ s{^chatgate_default_rule .*$}
                  {chatgate_default_rule global per_minute=1000000;}m
            unless $self->{seed_limits};

        my $dst = "$dir/conf/" . basename($src);
        open my $out, '>', $dst or croak "open $dst failed: $!";
        print $out $text;
        close $out;
    }

    my $conf = <<"CONF";
include chatgate-module.conf;

# The tests run as root and their folder is under /tmp: workers as root can
# reach the worker's socket there.
user root;
worker_processes 2;
daemon off;
pid $dir/run/nginx.pid;
error_log $dir/error.log info;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    log_format chatgate_test '\$remote_addr "\$request" \$status '
                             'rid=\$chatgate_request_id tag=\$http_x_test_tag';
    access_log $dir/access.log chatgate_test;

    include chatgate-http.conf;
    include chatgate-control.conf;

    server {
        listen 127.0.0.1:$self->{port};
        server_name localhost;

        include chatgate-server.conf;
$self->{server_conf}
    }
}
CONF

    open my $fh, '>', "$dir/conf/nginx.conf" or croak "open nginx.conf failed: $!";
    print $fh $conf;
    close $fh;
}

# Requests.

# Sends an HTTP request to nginx. Options: headers, body, json (a structure
# sent as the JSON body) and tag (sent as X-Test-Tag, so that request_id()
# finds the request in the access log; a fresh one is made when absent).
# Returns HTTP::Tiny's response with json (the decoded body, when it is
# JSON) and tag added.
sub request {
    my ($self, $method, $path, %opt) = @_;
    my %headers = %{ $opt{headers} // {} };

    my $tag = $opt{tag} // _random_hex(8);
    $headers{'X-Test-Tag'} = $tag;

    my %req = (headers => \%headers);
    if (exists $opt{json}) {
        $req{content} = $JSON->encode($opt{json});
        $headers{'Content-Type'} //= 'application/json';
    } elsif (defined $opt{body}) {
        $req{content} = $opt{body};
        $headers{'Content-Type'} //= 'application/json';
    }

    my $started = time;
    my $r = $self->{http}->request($method, $self->url($path), \%req);
    $r->{elapsed} = time - $started;
    $r->{tag} = $tag;
    $r->{json} = eval { $JSON->decode($r->{content}) } if length($r->{content} // '');
    return $r;
}

# POSTs a chat to /v1/chat/completions. Options: model (default
# "openai/gpt-4o-mini"), content (one user message) or messages, key (the
# bearer credential, default the script's BYOK key; undef sends none),
# extra (more fields for the body), headers, tag.
sub chat {
    my ($self, %opt) = @_;

    my %body = (
        model    => $opt{model} // 'openai/gpt-4o-mini',
        messages => $opt{messages}
            // [ { role => 'user', content => $opt{content} // 'hello' } ],
        %{ $opt{extra} // {} },
    );

    my %headers = %{ $opt{headers} // {} };
    my $key = exists $opt{key} ? $opt{key} : $self->{key};
    $headers{Authorization} = "Bearer $key" if defined $key;

    return $self->request('POST', $opt{path} // '/v1/chat/completions',
        json => \%body, headers => \%headers, tag => $opt{tag});
}

# Sends an admin API request through nginx as a script does: basic auth
# and the script's X-Admin-Token. path is under /admin/api (e.g. "/limits").
# Options as for request(), plus token (another token; undef sends none)
# and basic (0: no basic auth).
sub admin_via_nginx {
    my ($self, $method, $path, %opt) = @_;
    my %headers = %{ $opt{headers} // {} };
    my $token = exists $opt{token} ? $opt{token} : $self->{admin_token};

    $headers{'X-Admin-Token'} = $token if defined $token;
    $headers{Authorization} //= $self->basic_auth if $opt{basic} // 1;
    delete @opt{qw(token basic)};

    return $self->request($method, "/admin/api$path", %opt,
        headers => \%headers);
}

# Returns the body of GET on the module's control location (over its unix
# socket): the rules in force and the counters, one per line.
sub control_report {
    my ($self) = @_;

    my $s = IO::Socket::UNIX->new(Peer => $self->{control_socket})
        or return '';
    print $s "GET /chatgate/control HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $raw = <$s> // '';
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return ($head // '') =~ m{^HTTP/1\.\d 200} ? $body // '' : '';
}

# Polls code every 50 ms for at most timeout seconds (default 5) until it
# returns true. Returns that value, or undef.
sub wait_for {
    my ($self, $code, $timeout) = @_;
    my $deadline = time + ($timeout // 5);

    while (1) {
        my $v = $code->();
        return $v if $v;
        return undef if time > $deadline;
        sleep 0.05;
    }
}

# Stops nginx by its PID and starts it again with the same configuration.
sub restart_nginx {
    my ($self) = @_;

    my $status = $self->stop_process('nginx', 'QUIT');
    delete $self->{status}{nginx};
    $self->start_nginx();
    return $status;
}

# Sends bytes as they are over a new TCP connection and reads until the
# server closes it (at most timeout seconds). For requests HTTP::Tiny cannot
# send. Returns { status, headers (lowercase names), body, raw }.
sub raw {
    my ($self, $bytes, $timeout) = @_;

    my $s = IO::Socket::INET->new(
        PeerAddr => "127.0.0.1:$self->{port}", Timeout => 5)
        or croak "connect to nginx on port $self->{port} failed: $!";
    $s->autoflush(1);
    print $s $bytes;

    my $raw = '';
    my $deadline = time + ($timeout // 10);
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;
    while (time < $deadline) {
        my $rout = $rin;
        next unless select($rout, undef, undef, 0.2);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my %headers = map { my ($n, $v) = split /:\s*/, $_, 2; (lc $n, $v) } @lines;
    my ($status) = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})};

    return {
        status  => $status // 0,
        headers => \%headers,
        body    => $body // '',
        raw     => $raw,
        json    => scalar eval { $JSON->decode($body // '') },
    };
}

# Returns nginx's request id for the request sent with tag, from the access
# log (nginx writes the line when the request ends, so this polls briefly).
sub request_id {
    my ($self, $tag) = @_;
    my $deadline = time + 5;

    while (time < $deadline) {
        for (split /\n/, $self->read_log('access')) {
            return $1 if /rid=(\S+) tag=\Q$tag\E\b/ && $1 ne '-';
        }
        sleep 0.05;
    }
    return undef;
}

# Sends an HTTP request straight to the worker's unix socket, as nginx
# would. Options: headers, json (a structure sent as the body), body, role
# (sent as X-Chatgate-Role, the way the module vouches for a JWT), admin
# (1: send X-Admin-Token), raw_headers (header lines sent as given, after
# the others, so a name may repeat). Returns { status, headers (lowercase
# names), body, json }.
sub worker_request {
    my ($self, $method, $path, %opt) = @_;
    my %headers = %{ $opt{headers} // {} };

    $headers{'X-Admin-Token'} = $self->admin_token if $opt{admin};
    $headers{'X-Chatgate-Role'} = $opt{role} if $opt{role};
    my $body = exists $opt{json} ? $JSON->encode($opt{json}) : $opt{body} // '';
    $headers{'Content-Type'} //= 'application/json' if length $body;

    my $s = IO::Socket::UNIX->new(Peer => $self->{socket})
        or croak "connect to $self->{socket} failed: $!";
    my $head = "$method $path HTTP/1.0\r\nHost: chatgate\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . join('', map { "$_: $headers{$_}\r\n" } sort keys %headers)
        . join('', map { "$_\r\n" } @{ $opt{raw_headers} // [] });
    print $s "$head\r\n$body";

    local $/;
    my $raw = <$s> // '';
    close $s;

    my ($top, $content) = split /\r\n\r\n/, $raw, 2;
    my ($status_line, @lines) = split /\r\n/, $top // '';
    my %out;
    for (@lines) {
        my ($n, $v) = split /:\s*/, $_, 2;
        $out{ lc $n } = defined $out{ lc $n } ? "$out{lc $n}\n$v" : $v;
    }
    my ($status) = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})};

    return {
        status  => $status // 0,
        headers => \%out,
        body    => $content // '',
        json    => scalar eval { $JSON->decode($content // '') },
    };
}

# Sends an admin request with X-Admin-Token to the worker's socket.
sub admin {
    my ($self, $method, $path, %opt) = @_;
    return $self->worker_request($method, "/admin/api$path", admin => 1, %opt);
}

# POSTs /admin/api/login with email and password to the worker's socket.
sub admin_login {
    my ($self, $email, $password, %opt) = @_;
    return $self->worker_request('POST', '/admin/api/login',
        json => { email => $email, password => $password }, %opt);
}

# Stores a provider key through the admin API and returns its id.
sub add_key {
    my ($self, %key) = @_;
    my $r = $self->admin('POST', '/keys', json => {
        provider => 'openai', label => 'test key', %key });

    $r->{status} == 201
        or croak "POST /admin/api/keys answered $r->{status}: $r->{body}";
    return $r->{json}{id};
}

# Waits until the worker has loaded the stored keys since its last start.
sub wait_keys_loaded {
    my ($self) = @_;
    my $deadline = time + $START_TIMEOUT;

    until ($self->read_log('worker') =~ /provider keys loaded: \d+ of \d+ usable\n(?![\s\S]*started)/) {
        croak 'the worker did not load its provider keys' if time > $deadline;
        sleep 0.05;
    }
}

# Runs the worker's command line (e.g. "user", "add", EMAIL) with the
# script's settings and stdin as the standard input. Returns the exit
# status and the output.
sub worker_command {
    my ($self, $stdin, @args) = @_;
    my $out = "$self->{dir}/command.log";
    my $pid = open my $fh, '|-';
    croak "fork failed: $!" unless defined $pid;

    if ($pid == 0) {
        %ENV = (_clean_env());
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        no warnings 'exec';
        exec "$self->{build}/chatgate-worker", @args, '--env-file',
            "$self->{dir}/chatgate.env";
        POSIX::_exit(127);
    }

    print $fh $stdin // '';
    close $fh;
    my $status = $? >> 8;

    open my $in, '<', $out or croak "open $out failed: $!";
    local $/;
    my $text = <$in> // '';
    close $in;

    open my $all, '>>', "$self->{dir}/commands.log";
    print $all $text;
    close $all;

    return ($status, $text);
}

# Returns the list of requests that the emulator received (GET
# /_emulator/requests), decoded; a {"requests": [...]} wrapper is removed.
sub emulator_requests {
    my ($self) = @_;
    my $r = $self->{http}->get(
        "http://127.0.0.1:$self->{emulator_port}/_emulator/requests");

    $r->{success}
        or croak "GET /_emulator/requests failed: $r->{status} $r->{reason}";
    my $list = $JSON->decode($r->{content});
    $list = $list->{requests} // [] if ref $list eq 'HASH';
    return @$list;
}

# Returns the requests recorded by the emulator that mention text anywhere
# (path, headers, body, as the emulator reports them).
sub emulator_requests_with {
    my ($self, $text) = @_;
    return grep { index($JSON->encode($_), $text) >= 0 } $self->emulator_requests();
}

sub sha256 { sha256_hex($_[1]) }

# Counts the words in text: the emulator reports usage as word counts.
sub word_count {
    my ($self, $text) = @_;
    my @words = split ' ', $text // '';
    return scalar @words;
}

# Database.

# Runs sql on the script's database and returns the rows as a list of
# hashes (column => value, numbers as numbers, NULL as undef).
sub query {
    my ($self, $sql) = @_;
    my @cmd = ($self->_psql_argv(), '-c',
        "SELECT coalesce(json_agg(row_to_json(q)), '[]') FROM ($sql) q");

    open my $fh, '-|', @cmd or croak "run psql failed: $!";
    local $/;
    my $out = <$fh>;
    close $fh or croak "psql failed (status $?) on: $sql";
    return @{ $JSON->decode($out) };
}

# Returns the chat_logs row of request_id, polling for at most timeout
# seconds (default 10) because the worker writes rows in batches; undef
# when none appears.
sub log_row {
    my ($self, $request_id, $timeout) = @_;

    $request_id =~ /^[\w.:-]+$/
        or croak "request id \"$request_id\" has characters a request id cannot have";

    my $deadline = time + ($timeout // 10);
    while (1) {
        my ($row) = $self->query(
            "SELECT * FROM chat_logs WHERE request_id = '$request_id'");
        return $row if $row;
        return undef if time > $deadline;
        sleep 0.1;
    }
}

# Returns how many chat_logs rows have request_id, at once.
sub log_row_count {
    my ($self, $request_id) = @_;

    $request_id =~ /^[\w.:-]+$/
        or croak "request id \"$request_id\" has characters a request id cannot have";

    my ($row) = $self->query(
        "SELECT count(*) AS n FROM chat_logs WHERE request_id = '$request_id'");
    return $row->{n};
}

# Makes chat_logs reject rows whose model is "reject-me" (a CHECK
# constraint, SQLSTATE class 23) and adds a statement trigger that
# set_log_gate() steers: "copyfail" fails every COPY with an error that is
# not a rejection, so the log writer spools the rows; "slow" holds every
# INSERT for 300 ms, so that a replay can be interrupted.
sub install_log_gate {
    my ($self) = @_;

    $self->execute("ALTER TABLE chat_logs ADD CONSTRAINT chat_logs_test_model"
        . " CHECK (model <> 'reject-me')");
    $self->execute(<<'SQL');
CREATE TABLE test_flags (name text PRIMARY KEY);
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_query() LIKE 'COPY%'
       AND EXISTS (SELECT 1 FROM test_flags WHERE name = 'copyfail') THEN
        RAISE EXCEPTION 'test copy failure';
    END IF;
    IF current_query() LIKE 'INSERT%'
       AND EXISTS (SELECT 1 FROM test_flags WHERE name = 'slow') THEN
        PERFORM pg_sleep(0.3);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_gate BEFORE INSERT ON chat_logs
    FOR EACH STATEMENT EXECUTE FUNCTION test_gate();
SQL
}

# Turns the install_log_gate() behaviour name ("copyfail" or "slow") on or off.
sub set_log_gate {
    my ($self, $name, $on) = @_;

    $name =~ /^\w+$/ or croak "invalid log gate name \"$name\"";
    $self->execute($on ? "INSERT INTO test_flags VALUES ('$name')"
                         . " ON CONFLICT DO NOTHING"
                       : "DELETE FROM test_flags WHERE name = '$name'");
}

# Runs one SQL statement that returns no rows (UPDATE, DELETE, ...).
sub execute {
    my ($self, $sql) = @_;
    system($self->_psql_argv(), '-c', $sql) == 0
        or croak "psql failed (status $?) on: $sql";
}

# Starts psql with sql in the background, recorded under name.
sub psql_background {
    my ($self, $name, $sql) = @_;
    return $self->spawn($name, "$self->{dir}/$name.log", undef,
        $self->_psql_argv(), '-c', $sql);
}

# Logs.

my %LOG_FILES = (
    error    => 'error.log',
    access   => 'access.log',
    worker   => 'worker.log',
    emulator => 'emulator.log',
    migrate  => 'migrate.log',
    commands => 'commands.log',
);

sub read_log {
    my ($self, $which) = @_;
    my $file = "$self->{dir}/" . ($LOG_FILES{$which} // $which);

    open my $fh, '<', $file or return '';
    local $/;
    return <$fh> // '';
}

# Returns the names of the logs among @which that contain text.
sub logs_containing {
    my ($self, $text, @which) = @_;
    return grep { index($self->read_log($_), $text) >= 0 } @which;
}

# Returns the lines of log which that match re.
sub log_lines {
    my ($self, $which, $re) = @_;
    return grep { $_ =~ $re } split /\n/, $self->read_log($which);
}

# Answers one request on the listening socket capture, which stands in for
# an upstream, in a child process that gives up after 10 s, while send->()
# sends the request that nginx passes there. Returns send->()'s result and
# the request head that the socket received ('' when none arrived).
sub captured_head {
    my ($self, $capture, $send) = @_;
    my $file = "$self->{dir}/capture.head";
    unlink $file;

    my $pid = fork // croak "fork failed: $!";
    if ($pid == 0) {
        local $SIG{ALRM} = sub { POSIX::_exit(1) };
        alarm 10;
        my $c = $capture->accept or POSIX::_exit(1);
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            sysread($c, $head, 4096, length $head) or last;
        }
        my $body = 'captured';
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh $head;
        close $fh;
        POSIX::_exit(0);
    }

    my $r = $send->();
    waitpid $pid, 0;
    open my $fh, '<', $file or return ($r, '');
    local $/;
    return ($r, scalar <$fh>);
}

# Returns the lines of log which that match re, waiting up to timeout seconds
# (default 5) for the first. The worker logs a request's end after its answer
# went out, so a client can read the answer before the line is written.
sub wait_log_lines {
    my ($self, $which, $re, $timeout) = @_;
    my @lines;

    $self->wait_for(sub { @lines = $self->log_lines($which, $re) }, $timeout);
    return @lines;
}

# Stopping.

# Stops nginx, the worker and the emulator, in that order, by PID.
sub stop {
    my ($self) = @_;

    $self->stop_process('nginx', 'QUIT');
    $self->stop_process('worker', 'TERM');
    $self->stop_process('emulator', 'TERM');
    for my $name (keys %{ $self->{procs} }) {
        $self->stop_process($name, 'TERM');
    }
}

# Stops everything, checks that no log shows an alert or a sanitizer
# report, removes the folder if every test passed, and ends the plan.
sub finish {
    my ($self) = @_;

    $self->stop();

    my @alerts = $self->log_lines('error', qr/\[(alert|emerg)\]/);
    ok(!@alerts, 'nginx error log no alerts') or diag(join "\n", @alerts);

    # NOTE: leak reports count as failures too. Leaks that libcurl or OpenSSL
    # keep until exit would need an LSan suppressions file here.
    for my $which (qw(worker emulator migrate)) {
        my @reports = $self->log_lines($which,
            qr/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
        ok(!@reports, "$which log no sanitizer reports")
            or diag(join "\n", @reports);
    }

    # A worker process that ASan or UBSan stops fails no request check
    # when the master starts another one, so the report files decide.
    my @nginx_reports = ChatgateNginx::sanitizer_reports($self->{dir});
    ok(!@nginx_reports, 'nginx no sanitizer reports')
        or diag(join "\n", @nginx_reports);

    if (Test::More->builder->is_passing) {
        remove_tree($self->{dir});
    } else {
        diag("logs and configuration kept in $self->{dir}");
    }

    $self->{finished} = 1;
    done_testing();
}

END {
    my $status = $?;

    if ($$ == $OWNER_PID) {
        for my $pid (keys %RUNNING) {
            kill 'TERM', $pid;
        }
        my $deadline = time + $STOP_TIMEOUT;
        for my $pid (keys %RUNNING) {
            while (waitpid($pid, WNOHANG) == 0 && time < $deadline) {
                sleep 0.05;
            }
            kill 'KILL', $pid if kill 0, $pid;
            waitpid($pid, 0);
        }
    }

    $? = $status;
}

1;
