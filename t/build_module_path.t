#!/usr/bin/perl

# scripts/build-module.sh must build the module in a folder whose path
# contains ".S", as a mktemp -d checkout (/tmp/tmp.S...) can. nginx 1.22's
# configure turned such an absolute build path into a wrong object path,
# and the build failed. The ".c" path is a neighbouring case that passed.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $ngx_src = $ENV{NGX_SRC} // '/usr/share/nginx/src';
plan skip_all => "$ngx_src/conf_flags not found (nginx-dev)"
    unless -f "$ngx_src/conf_flags";

my $tmp = tempdir('cg-build-XXXXXX', TMPDIR => 1, CLEANUP => 1);

for my $dir ("$tmp/tmp.Sx/nginx", "$tmp/dir.cx/nginx") {
    my $out = `scripts/build-module.sh '$ngx_src' '$dir' 2>&1`;
    is($?, 0, "build module in $dir") or diag $out;
    ok(-f "$dir/ngx_http_chatgate_module.so", "module built in $dir");
}

done_testing();
