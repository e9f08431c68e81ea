package ChatgateNginx;

# Starts Debian's nginx with the chatgate module under a temporary prefix,
# sends raw HTTP/1.0 requests to it and stops it by PID.  Core Perl only.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::IP;
use Digest::SHA qw(hmac_sha256);
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Exporter qw(import);
our @EXPORT = qw(free_port start_nginx stop_nginx reload_nginx http_request
                 error_log_alerts error_log module_path start_echo_server
                 write_conf test_config control_put control_get limit_http
                 make_jwt b64url write_file);

my $repo = abs_path(dirname(__FILE__) . '/../..');
my @started;

# Prefixes of every nginx run, including "nginx -t", for the sanitizer check
# in END.
my @prefixes;

# Returns the absolute path of the module to load: CHATGATE_MODULE, else
# the one in CHATGATE_BUILD (build/ by default).
sub module_path {
    my $path = $ENV{CHATGATE_MODULE}
        // ($ENV{CHATGATE_BUILD} // "$repo/build") . '/nginx/ngx_http_chatgate_module.so';
    return File::Spec->rel2abs($path);
}

# Returns the environment variables to add for an nginx run under the
# prefix $dir. When scripts/test.sh found a module built with sanitizers,
# it sets CHATGATE_NGINX_PRELOAD to the ASan and UBSan runtimes; nginx then
# runs with them preloaded and ASan writes each report to a file under
# $dir/sanitizer. Otherwise returns an empty list.
sub sanitizer_env {
    my ($dir) = @_;
    my $preload = $ENV{CHATGATE_NGINX_PRELOAD} or return ();

    make_path("$dir/sanitizer");

    # Each nginx 1.22.1 worker process reports about 216 KB that nginx's own
    # ngx_alloc() leaves at exit, so leak detection is off.
    # NOTE: so leaks in the module go unreported here.
    # The options given here come after the caller's, so they win.
    my $asan = join ':', grep { length } $ENV{ASAN_OPTIONS} // '',
        'detect_leaks=0', "log_path=$dir/sanitizer/asan";

    return (LD_PRELOAD => $preload, ASAN_OPTIONS => $asan);
}

# Returns each sanitizer report of an nginx run under the prefix $dir: the
# text of each ASan report file, then the report lines of the error log
# and of nginx's own stderr.
#
# NOTE: with GCC 12's runtimes preloaded, UBSan writes its one-line report
# to stderr whatever ASAN_OPTIONS or UBSAN_OPTIONS set as log_path, and
# prints no stack, so the error log is searched for it.
sub sanitizer_reports {
    my ($dir) = @_;
    my @reports;

    for my $file (sort glob "$dir/sanitizer/*") {
        open my $f, '<', $file or next;
        local $/;
        push @reports, "$file:\n" . (<$f> // '');
    }

    for my $file ("$dir/error.log", "$dir/nginx.stderr") {
        open my $f, '<', $file or next;
        my @lines = grep { /runtime error:|ERROR: (Address|Leak)Sanitizer/ } <$f>;
        push @reports, "$file:\n" . join('', @lines) if @lines;
    }

    return @reports;
}

# Returns a TCP port on 127.0.0.1 that nothing listens on at the moment.
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', ReuseAddr => 1)
        or die "cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# Writes the http {} body (%%DIR%% stands for the prefix) into a full nginx.conf under a new temporary
# prefix, starts nginx and waits until every port in $ports accepts.
# Returns a handle: { dir, conf, pid }.
sub start_nginx {
    my (%args) = @_;
    my $dir = tempdir('chatgate-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $nginx = write_conf($dir, %args);

    push @prefixes, $dir;
    my $out = do {
        local %ENV = (%ENV, sanitizer_env($dir));
        `/usr/sbin/nginx -p $dir/ -c $dir/nginx.conf -e $dir/error.log 2>&1`;
    };
    die "nginx failed to start: $out\n" if $?;

    my $deadline = time + 5;

    while (time < $deadline) {
        if (open my $p, '<', "$dir/nginx.pid") {
            my $pid = <$p>;
            if (defined $pid && $pid =~ /^(\d+)/) {
                $nginx->{pid} = $1;
                last;
            }
        }
        sleep 0.05;
    }

    die "nginx wrote no pid file in $dir\n" unless $nginx->{pid};
    push @started, $nginx;

    for my $port (@{ $args{ports} // [] }) {
        wait_port($port);
    }

    return $nginx;
}

# Runs "nginx -t" on a configuration and returns its exit code and output.
sub test_config {
    my (%args) = @_;
    my $dir = tempdir('chatgate-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    write_conf($dir, %args);

    push @prefixes, $dir;
    my $out = do {
        local %ENV = (%ENV, sanitizer_env($dir));
        `/usr/sbin/nginx -t -p $dir/ -c $dir/nginx.conf -e $dir/error.log 2>&1`;
    };
    return ($? >> 8, $out);
}

# Writes nginx.conf and a static file "ok.txt" under $dir.  Returns
# { dir, conf }.
sub write_conf {
    my ($dir, %args) = @_;
    my $workers = $args{workers} // 1;
    my $main = $args{main} // '';
    my $module = module_path();
    my $http = $args{http} // '';

    # tests write %%DIR%% where they need the prefix, which exists only now
    $http =~ s/%%DIR%%/$dir/g;

    die "module not built: $module (run make module)\n" unless -f $module;

    my $conf = <<"CONF";
load_module $module;
user root;
worker_processes $workers;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log info;
$main
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$http
}
CONF

    open my $fh, '>', "$dir/nginx.conf" or die "cannot write nginx.conf: $!";
    print $fh $conf;
    close $fh;

    open $fh, '>', "$dir/ok.txt" or die "cannot write ok.txt: $!";
    print $fh "ok\n";
    close $fh;

    return { dir => $dir, conf => "$dir/nginx.conf" };
}

# Returns an http {} body with a zone, a limited location on $port that
# serves ok.txt and trusts X-Real-IP from 127.0.0.1, and a control
# location on $control.
sub limit_http {
    my (%args) = @_;
    my $size = $args{zone_size} // '1m';
    my $zone_args = $args{zone_args} // '';
    my $extra = $args{extra} // '';

    return <<"CONF";
    chatgate_zone cg $size $zone_args;
    $extra

    server {
        listen 127.0.0.1:$args{port};

        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;

        location / {
            chatgate on;
            chatgate_limit_zone cg;
            chatgate_retry_jitter 0;
            root %%DIR%%;
            try_files /ok.txt =404;
        }
    }

    server {
        listen 127.0.0.1:$args{control};

        location /control {
            chatgate_control on;
            chatgate_limit_zone cg;
            client_body_buffer_size 1m;
        }
    }
CONF
}

# Pushes a rule set to a control location and returns the response.
sub control_put {
    my ($port, $body) = @_;
    return http_request(port => $port, method => 'PUT', path => '/control',
                        body => $body);
}

sub control_get {
    my ($port) = @_;
    return http_request(port => $port, path => '/control');
}

# base64url without padding, as JWTs use it.
sub b64url {
    my ($bytes) = @_;
    return encode_base64url($bytes);
}

# Signs an HS256 JWT.  $header and $claims are hash refs, or strings that
# are used as the JSON text as they are, so tests can forge any header.
sub make_jwt {
    my ($secret, $claims, $header) = @_;
    my $json = JSON::PP->new->canonical;
    $header //= { alg => 'HS256', typ => 'JWT' };

    my $h = ref $header ? $json->encode($header) : $header;
    my $c = ref $claims ? $json->encode($claims) : $claims;
    my $signed = b64url($h) . '.' . b64url($c);

    return $signed . '.' . b64url(hmac_sha256($signed, $secret));
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "cannot write $path: $!";
    print $fh $text;
    close $fh;
}

sub wait_port {
    my ($port) = @_;
    my $deadline = time + 5;

    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        return if $s;
        sleep 0.05;
    }

    die "nothing listens on 127.0.0.1:$port\n";
}

# Sends SIGHUP and waits until the old worker processes have exited, so
# the next request is served by the new configuration.
sub reload_nginx {
    my ($nginx) = @_;
    my $before = worker_pids($nginx->{pid});

    kill 'HUP', $nginx->{pid} or die "cannot signal nginx $nginx->{pid}: $!";

    my $deadline = time + 10;
    while (time < $deadline) {
        my $now = worker_pids($nginx->{pid});
        my %old = map { $_ => 1 } @$before;
        if (@$now && !grep { $old{$_} } @$now) {
            return 1;
        }
        sleep 0.05;
    }

    return 0;
}

sub worker_pids {
    my ($master) = @_;
    my @pids;

    opendir my $d, '/proc' or return [];
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $f, '<', "/proc/$pid/stat" or next;
        my $stat = <$f>;
        next unless defined $stat && $stat =~ /^\d+ \(.*\) \S (\d+)/;
        push @pids, $pid if $1 == $master;
    }

    return \@pids;
}

sub stop_nginx {
    my ($nginx) = @_;
    my $pid = $nginx->{pid} or return;

    kill 'QUIT', $pid;

    my $deadline = time + 5;
    while (time < $deadline && kill(0, $pid)) {
        sleep 0.05;
    }

    kill 'KILL', $pid if kill(0, $pid);
    delete $nginx->{pid};
}

my @children;

# Stops what the script started, then fails the script when nginx wrote a
# sanitizer report: a report from a worker process shows in no test
# result, because the master only logs the worker's exit at notice level
# and starts another one.
END {
    # waitpid below sets $?, which would replace the test's exit status
    my $status = $?;

    stop_nginx($_) for @started;

    for my $pid (@children) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }

    my @reports = map { sanitizer_reports($_) } @prefixes;
    if (@reports) {
        # keep the prefixes, which hold the configuration and logs
        $File::Temp::KEEP_ALL = 1;
        print STDERR "# nginx wrote sanitizer reports, prefixes kept in /tmp:\n",
            map { s/^/#   /mgr } @reports;
        $status ||= 1;
    }

    $? = $status;
}

# Forks a server on 127.0.0.1:$port that answers each request with 200 and
# the request head it received as the body, so tests see every header
# exactly as nginx forwarded it.  It exits after $max requests or 60 s.
sub start_echo_server {
    my ($port, $max) = @_;
    $max //= 1000;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Listen => 64,
                                       Proto => 'tcp', ReuseAddr => 1)
        or die "cannot listen on 127.0.0.1:$port: $!";

    my $pid = fork // die "fork failed: $!";

    if ($pid) {
        close $listen;
        push @children, $pid;
        return $pid;
    }

    @started = ();
    @children = ();
    @prefixes = ();
    alarm 60;

    for (1 .. $max) {
        my $c = $listen->accept or next;
        my $head = '';

        while (my $line = <$c>) {
            $head .= $line;
            last if $line eq "\r\n";
        }

        my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
        read $c, my $body, $len if $len;

        print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
               . "Content-Length: " . length($head) . "\r\n\r\n$head";
        close $c;
    }

    POSIX::_exit(0);
}

# Sends one HTTP/1.0 request and returns { status, headers, body }, where
# headers maps each lowercase name to a list of values.  $headers is a list
# of [name, value] pairs so that tests can send duplicates and any case.
sub http_request {
    my (%args) = @_;
    my $host = $args{host} // '127.0.0.1';
    my $method = $args{method} // 'GET';
    my $body = $args{body} // '';

    my $s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $args{port},
                                Proto => 'tcp', Timeout => 5)
        or die "cannot connect to $host:$args{port}: $!";

    my $req = "$method $args{path} HTTP/1.0\r\nHost: localhost\r\n";
    for my $h (@{ $args{headers} // [] }) {
        $req .= "$h->[0]: $h->[1]\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body;
    $req .= "\r\n$body";

    print $s $req;

    local $/;
    my $raw = <$s> // '';
    close $s;

    my ($head, $rbody) = split /\r\n\r\n/, $raw, 2;
    my @lines = split /\r\n/, $head // '';
    my $status_line = shift @lines // '';
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    my %h;

    for my $line (@lines) {
        my ($k, $v) = split /:\s*/, $line, 2;
        push @{ $h{lc $k} }, $v;
    }

    return { status => $status // 0, headers => \%h, body => $rbody // '' };
}

sub error_log {
    my ($nginx) = @_;
    open my $f, '<', "$nginx->{dir}/error.log" or return '';
    local $/;
    return <$f>;
}

# Returns the [alert] and [emerg] lines of the error log.
sub error_log_alerts {
    my ($nginx) = @_;
    open my $f, '<', "$nginx->{dir}/error.log" or return ();
    return grep { /\[(alert|emerg)\]/ } <$f>;
}

1;
