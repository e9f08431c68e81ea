#!/usr/bin/perl

# Reload: counters and the pushed rule set survive "nginx -s reload",
# even when the reloaded configuration has another default rule.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use ChatgateNginx;

my $port = free_port();
my $control = free_port();

my $nginx = start_nginx(ports => [$port, $control],
                        http => limit_http(port => $port, control => $control));

sub get {
    return http_request(port => $port, path => '/',
                        headers => [['X-Real-IP', '10.0.0.1']]);
}

is(control_put($control, "rule ip:* - - - 3\n")->{status}, 200,
   'reload push');

my @statuses = map { get()->{status} } 1 .. 4;
is("@statuses", '200 200 200 429', 'reload quota used before reload');

# a new default rule in the configuration does not replace pushed rules

my $conf = do { local (@ARGV, $/) = $nginx->{conf}; <> };
$conf =~ s/(chatgate_zone cg 1m\s*;)/$1\n    chatgate_default_rule global per_minute=1000;/;
open my $fh, '>', $nginx->{conf} or die "cannot write $nginx->{conf}: $!";
print $fh $conf;
close $fh;

ok(reload_nginx($nginx), 'reload new workers started');

is(get()->{status}, 429, 'reload keeps counters');
is(http_request(port => $port, path => '/',
                headers => [['X-Real-IP', '10.0.0.2']])->{status}, 200,
   'reload keeps rules for other addresses');

my $r = control_get($control);
like($r->{body}, qr/^rule ip:\* - - - 3$/m, 'reload keeps pushed rules');
unlike($r->{body}, qr/^rule global/m, 'reload default rule not applied');
like($r->{body}, qr/^usage \S+ ip:10\.0\.0\.1 3$/m, 'reload keeps usage');
like($r->{body}, qr/^denied ip:10\.0\.0\.1 2$/m, 'reload keeps denials');

is_deeply([error_log_alerts($nginx)], [], 'reload no alerts');

done_testing();
