#!/usr/bin/perl

# The X-Chatgate-* headers of a request that does not pass the module's
# access handler once, in one location: after an internal redirect
# (error_page, try_files), in a subrequest (SSI), which nginx runs without
# the access phase, and under "satisfy any", whose allowed address skips
# the rest of that phase. After a redirect each location gets the module's
# headers when it has chatgate_upstream_headers on and none when it has it
# off. A subrequest gets none, and no client-sent X-Chatgate-* header
# reaches the worker or a capture server that stands in for a provider.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use Test::More;
use Chatgate::Test;

my $port = Chatgate::Test::free_port();
my $capture = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
    Listen => 8, ReuseAddr => 1) or die "listen on 127.0.0.1:$port failed: $!";

# a static page of a chat location that includes a provider's page
my $pages = tempdir('chatgate-pages-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $page, '>', "$pages/report.html" or die "write report.html failed: $!";
print $page qq{<!--# include virtual="/provider-page" -->\n};
close $page;
open $page, '>', "$pages/status.html" or die "write status.html failed: $!";
print $page qq{<!--# include virtual="/worker-page" -->\n};
close $page;

# nothing listens here, so proxying to it fails with 502
my $closed = Chatgate::Test::free_port();

my $t = Chatgate::Test->new(server_conf => <<"CONF");
        # a chat location with a fallback straight to a provider
        location /fallback/ {
            chatgate on;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$closed/;
            error_page 502 = \@provider;
        }

        location \@provider {
            proxy_pass http://127.0.0.1:$port;
        }

        # chatgate on for the whole path, the worker's headers only in the
        # location that proxies to it
        location /tried/ {
            chatgate on;
            try_files /nonexistent \@worker;
        }

        location \@worker {
            chatgate on;
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$port;
        }

        # trusted hosts reach the admin API with the token alone, which the
        # worker checks itself
        location /trusted/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            rewrite ^/trusted/(.*)\$ /admin/api/\$1 break;
            include chatgate-proxy.conf;
        }

        # a page that includes the admin API's rules
        location = /report {
            default_type text/html;
            ssi on;
            return 200 '<!--# include virtual="/admin/api/limits" -->';
        }

        location = /report.html {
            chatgate on;
            chatgate_upstream_headers on;
            root $pages;
            ssi on;
        }

        location = /provider-page {
            proxy_pass http://127.0.0.1:$port;
        }

        # a checked page that includes a location with the directive on
        location = /status.html {
            chatgate on;
            chatgate_upstream_headers on;
            root $pages;
            ssi on;
        }

        location = /worker-page {
            chatgate_upstream_headers on;
            proxy_pass http://127.0.0.1:$port;
        }
CONF

my %forged = ('X-Chatgate-Role' => 'admin',
              'x-chatgate-key-id' => '11111111-1111-1111-1111-111111111111');

# Sends GET $path with the forged headers. Returns the response and the
# request head that the capture server received.
sub captured_head {
    my ($path) = @_;
    return $t->captured_head($capture,
        sub { $t->request('GET', $path, headers => \%forged) });
}

my ($r, $head) = captured_head('/fallback/v1/models');
is($r->{status}, 200, 'fallback status');
like($head, qr{^GET /fallback/v1/models }, 'fallback reached provider');
unlike($head, qr/^X-Chatgate-/mi, 'fallback no chatgate headers');

($r, $head) = captured_head('/tried/v1/models');
is($r->{status}, 200, 'try_files status');
like($head, qr/^X-Chatgate-Request-Id: [0-9a-f]{32}\r$/mi,
     'try_files request id sent');
like($head, qr/^X-Chatgate-Client-Addr: 127\.0\.0\.1\r$/mi,
     'try_files client address sent');
unlike($head, qr/^X-Chatgate-Role:/mi, 'try_files client role removed');
unlike($head, qr/^X-Chatgate-Key-Id:/mi, 'try_files client key id removed');

($r, $head) = captured_head('/report.html');
is($r->{status}, 200, 'provider subrequest status');
like($r->{content}, qr/captured/, 'provider subrequest included');
unlike($head, qr/^X-Chatgate-/mi, 'provider subrequest no chatgate headers');

# The main request passed /status.html's checks, which need not be the
# subrequest location's, so the subrequest carries no identity.
($r, $head) = captured_head('/status.html');
is($r->{status}, 200, 'worker subrequest status');
like($r->{content}, qr/captured/, 'worker subrequest included');
like($head, qr{^GET /worker-page }, 'worker subrequest reached upstream');
unlike($head, qr/^X-Chatgate-/mi, 'worker subrequest no chatgate headers');

# The worker takes X-Chatgate-Role for the module's word, so a forged one
# that got through would read the rules.
$r = $t->request('GET', '/trusted/limits', headers => \%forged);
is($r->{status}, 401, 'satisfy any forged role rejected');

$r = $t->request('GET', '/trusted/limits',
    headers => { 'X-Admin-Token' => $t->admin_token });
is($r->{status}, 200, 'satisfy any admin token accepted');

# HTTP/0.9 carries no headers, and nginx leaves the header list of such a
# request uninitialized: the module's preaccess handler must not crash on it.
$r = $t->raw("GET /trusted/limits\r\n");
like($r->{raw}, qr/"authentication_error"/, 'satisfy any HTTP/0.9 rejected');

$r = $t->request('GET', '/report', headers => \%forged);
is($r->{status}, 200, 'subrequest page status');
unlike($r->{content}, qr/"scope"/, 'subrequest forged role got no rules');

$t->finish();
