#!/usr/bin/env perl
# Summarize a results file of bench/run.sh as markdown: medians with their
# spread (min-max) per case, the streams' time to first token, the growth
# curve, the performance targets and the skipped cases.
#
# usage: perl bench/report.pl RESULTS.tsv

use strict;
use warnings;

my $file = shift or die "usage: $0 RESULTS.tsv\n";
open my $in, '<', $file or die "cannot open \"$file\": $!\n";

my (%meta, @columns, @rows, @skips);

while (my $line = <$in>) {
    chomp $line;
    if ($line =~ /^# (\w+)\t(.*)$/) {
        $meta{$1} = $2;
        next;
    }
    my @fields = split /\t/, $line, -1;
    if (!@columns) {
        @columns = @fields;
        next;
    }
    my %row;
    @row{@columns} = @fields;
    if ($row{run} eq '0') {
        push @skips, \%row;
    } elsif ($row{requests} ne '-') {
        # Gateway CPU per content event, for the streaming cases.
        my $events = $row{events_per_req} // '-';
        my $cpu = $row{gw_cpu_us_per_req} // '-';
        $row{gw_cpu_us_per_event} = $events ne '-' && $events > 0 && $cpu ne '-'
            ? $cpu / $events : '-';
        push @rows, \%row;
    }
}
close $in;

my ($conns_setting) = ($meta{settings} // '') =~ /BENCH_CONNS="([^"]*)"/;
my %main_conns = map { $_ => 1 } split ' ', ($conns_setting // '1 32');

# Group the runs of one instance at one connection count.
my (%groups, @order);
for my $row (@rows) {
    my $key = "$row->{id}\t$row->{conns}";
    push @order, $key unless $groups{$key};
    push @{ $groups{$key} }, $row;
}

sub values_of {
    my ($key, $column) = @_;
    return grep { defined && $_ ne '-' } map { $_->{$column} } @{ $groups{$key} || [] };
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return $v[$#v / 2] if @v % 2;
    return ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub stat_of {
    my ($key, $column) = @_;
    my @v = sort { $a <=> $b } values_of($key, $column);
    return unless @v;
    return (median(@v), $v[0], $v[-1]);
}

sub fmt {
    my ($value, $digits) = @_;
    return '-' unless defined $value;
    return sprintf "%.${digits}f", $value;
}

sub fmt_spread {
    my ($key, $column, $digits) = @_;
    my ($med, $min, $max) = stat_of($key, $column);
    return '-' unless defined $med;
    return fmt($med, $digits) if @{ $groups{$key} } == 1;
    return sprintf '%s (%s-%s)', fmt($med, $digits), fmt($min, $digits), fmt($max, $digits);
}

sub sum_of {
    my $total = 0;
    $total += $_ for values_of(@_);
    return $total;
}

sub max_of {
    my @v = sort { $a <=> $b } values_of(@_);
    return @v ? $v[-1] : undef;
}

print "## chatgate benchmark, $meta{date}\n\n";
printf "Machine: %s CPUs (%s), Linux %s, nginx %s, wrk %s, node %s, PostgreSQL %s.  \n",
    map { $meta{$_} // '?' } qw(nproc cpu kernel nginx wrk node postgres);
printf "Commit %s, emulator: %s.  \nLoad average %s; after the run %s.  \nSettings: %s.\n\n",
    map { $meta{$_} // '?' } qw(commit emulator loadavg loadavg_after settings);
print "Binaries from $meta{build}.\n\n" if defined $meta{build};

print "| case | nginx workers | conns | req/s | p50 ms | p99 ms | added p50 ms | gateway CPU us/req | peak RSS MB | errors / non-2xx | other CPU % | note |\n";
print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

for my $key (@order) {
    my ($id, $conns) = split /\t/, $key;
    next unless $main_conns{$conns};

    my $first = $groups{$key}[0];
    my ($p50) = stat_of($key, 'p50_ms');
    my ($direct_p50) = stat_of("direct\t$conns", 'p50_ms');
    my $added = defined $direct_p50 && $id ne 'direct' ? $p50 - $direct_p50 : undef;
    my $rss = max_of($key, 'gw_rss_kb');
    my @notes = grep { $_ ne '-' } $first->{note};

    if ($first->{log_rows} ne '-') {
        push @notes, sprintf 'chat_logs rows %d for %d answered', sum_of($key, 'log_rows'),
            sum_of($key, 'requests');
    }
    # Files from before the open load have no late column.
    if (($first->{late} // '-') ne '-') {
        push @notes, sprintf '%d streams sent over 1 ms after due', sum_of($key, 'late');
    }
    my $worker_rss = max_of($key, 'worker_rss_kb');
    push @notes, sprintf 'worker RSS %.1f MB', $worker_rss / 1024 if defined $worker_rss;
    my ($worker_cpu) = stat_of($key, 'worker_cpu_us_per_req');
    push @notes, sprintf 'worker CPU %s us/req', fmt_spread($key, 'worker_cpu_us_per_req', 1)
        if defined $worker_cpu;

    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d | %s | %s |\n",
        $first->{case}, $first->{workers}, $conns,
        fmt_spread($key, 'rps', 0), fmt_spread($key, 'p50_ms', 3), fmt_spread($key, 'p99_ms', 3),
        fmt($added, 3), fmt_spread($key, 'gw_cpu_us_per_req', 1),
        defined $rss ? sprintf('%.1f', $rss / 1024) : '-',
        sum_of($key, 'errors'), sum_of($key, 'non2xx'), fmt_spread($key, 'other_cpu_pct', 0),
        join('; ', @notes) || '';
}

print "\nreq/s, p50, p99 and CPU: median of the runs, (min-max) across them. added p50: the\n"
    . "case's median p50 minus the direct case's at the same connections. Peak RSS: VmHWM\n"
    . "summed over the gateway's processes during the run, highest of the runs. other CPU: CPU time of processes\n"
    . "outside the benchmark (other jobs on the machine) as a share of all CPUs during the run.\n";

# Streams: time to first token against the bare nginx stream at the same
# connections.
my @stream_keys = grep {
    my ($id, $conns) = split /\t/;
    $main_conns{$conns} && ($groups{$_}[0]{ttft_p50_ms} // '-') ne '-';
} @order;

if (@stream_keys) {
    print "\n### Streaming: time to first token\n\n";
    print "| case | nginx workers | conns | streams/s | TTFT p50 ms | TTFT p99 ms | added TTFT p50 ms | stream p50 ms | content events per stream | gateway CPU us/stream | gateway CPU us/event | errors / non-2xx |\n";
    print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

    for my $key (@stream_keys) {
        my ($id, $conns) = split /\t/, $key;
        my $first = $groups{$key}[0];
        my ($ttft) = stat_of($key, 'ttft_p50_ms');
        # Portkey has no nginx workers ("-"): it is compared with one.
        my $workers = $first->{workers} eq '-' ? 1 : $first->{workers};
        # An open-load case is compared with bare nginx under the same load.
        my $ref = $first->{case} =~ /_rate$/ ? 'nginx_stream_rate' : 'nginx_stream';
        my ($bare) = stat_of("$ref/w$workers\t$conns", 'ttft_p50_ms');
        my $added = defined $bare && $first->{case} ne $ref ? $ttft - $bare : undef;

        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |\n",
            $first->{case}, $first->{workers}, $conns,
            fmt_spread($key, 'rps', 0), fmt_spread($key, 'ttft_p50_ms', 3),
            fmt_spread($key, 'ttft_p99_ms', 3), fmt($added, 3), fmt_spread($key, 'p50_ms', 3),
            fmt_spread($key, 'events_per_req', 0), fmt_spread($key, 'gw_cpu_us_per_req', 1),
            fmt_spread($key, 'gw_cpu_us_per_event', 2),
            sum_of($key, 'errors'), sum_of($key, 'non2xx');
    }

    print "\nTTFT: from handing the request to the load client's event loop to the read that\n"
        . "completes the first `data:` event with non-empty content (bench/stream_load.c), per\n"
        . "stream, p50 and p99 of one run; median (min-max) across runs. added TTFT p50: the\n"
        . "case's median minus nginx_stream's at the same connections (for the open-load\n"
        . "*_rate cases, nginx_stream_rate's; their conns is the pool that their streams\n"
        . "start on, at a fixed rate, and TTFT counts from when a stream was due). stream p50:\n"
        . "the whole stream. gateway CPU us/event: CPU per stream divided by the content events\n"
        . "received.\n";
}

# Growth curve: every instance measured at more than the main connection counts.
my %growth;
for my $key (@order) {
    my ($id, $conns) = split /\t/, $key;
    $growth{$id}{$conns} = $key;
}
my @growth_ids = grep { grep { !$main_conns{$_} } keys %{ $growth{$_} } } sort keys %growth;

if (@growth_ids) {
    my %all;
    $all{$_} = 1 for map { keys %{ $growth{$_} } } @growth_ids;
    my @conns = sort { $a <=> $b } keys %all;

    print "\n### Growth curve: req/s (p99 ms)\n\n";
    print "| case | ", join(' | ', map { "c$_" } @conns), " |\n";
    print "| --- |", " --- |" x @conns, "\n";
    for my $id (@growth_ids) {
        my @cells = map {
            my $key = $growth{$id}{$_};
            if (!$key) {
                '-';
            } else {
                my ($rps) = stat_of($key, 'rps');
                my ($p99) = stat_of($key, 'p99_ms');
                sprintf '%s (%s)', fmt($rps, 0), fmt($p99, 2);
            }
        } @conns;
        print "| $id | ", join(' | ', @cells), " |\n";
    }
}

# The targets compare instances with the same nginx workers and connections.
sub target_line {
    my ($name, $ok, $text) = @_;
    my $verdict = !defined $ok ? 'not measured' : $ok ? 'met' : 'missed';
    print "| $name | $text | $verdict |\n";
}

print "\n### Targets\n\n| target | measured | verdict |\n| --- | --- | --- |\n";

for my $w (1, 2) {
    for my $c (sort { $a <=> $b } keys %main_conns) {
        my ($full) = stat_of("full/w$w\t$c", 'rps');
        my ($bare) = stat_of("nginx/w$w\t$c", 'rps');
        next unless defined $bare;
        my $ratio = defined $full ? $full / $bare : undef;
        target_line("full path req/s >= 40% of bare nginx (w$w, c$c)",
            defined $ratio ? $ratio >= 0.40 : undef,
            defined $ratio ? sprintf('%.0f%%', 100 * $ratio) : '-');

        my ($full_cpu) = stat_of("full/w$w\t$c", 'gw_cpu_us_per_req');
        my ($bare_cpu) = stat_of("nginx/w$w\t$c", 'gw_cpu_us_per_req');
        my ($worker_cpu) = stat_of("full/w$w\t$c", 'worker_cpu_us_per_req');
        my $cpu_ratio = defined $full_cpu && $bare_cpu ? $full_cpu / $bare_cpu : undef;
        my $split = defined $worker_cpu ? sprintf(', worker %s', fmt($worker_cpu, 1)) : '';
        target_line("nginx+worker CPU/req <= 3x bare nginx (w$w, c$c)",
            defined $cpu_ratio ? $cpu_ratio <= 3 : undef,
            defined $cpu_ratio ? sprintf('%.2fx (%s vs %s us%s)', $cpu_ratio, fmt($full_cpu, 1),
                fmt($bare_cpu, 1), $split) : '-');

        my ($module) = stat_of("module/w$w\t$c", 'rps');
        my ($limit) = stat_of("limit_req/w$w\t$c", 'rps');
        my $diff = defined $module && $limit ? ($module - $limit) / $limit : undef;
        target_line("module-only req/s within 5% of limit_req (w$w, c$c)",
            defined $diff ? $diff >= -0.05 : undef,
            defined $diff ? sprintf('%+.1f%%', 100 * $diff) : '-');
    }

    my ($full_p50) = stat_of("full/w$w\t1", 'p50_ms');
    my ($bare_p50) = stat_of("nginx/w$w\t1", 'p50_ms');
    if (defined $bare_p50) {
        my $added = defined $full_p50 ? $full_p50 - $bare_p50 : undef;
        target_line("full path p50 <= bare nginx + 0.1 ms (w$w, c1)",
            defined $added ? $added <= 0.1 : undef,
            defined $added ? sprintf('%+.3f ms', $added) : '-');
    }
}

# Not a target: the module against limit_req with the same headers, which
# separates the module's logic from the bytes its headers add.
my @header_lines;
for my $w (1, 2) {
    for my $c (sort { $a <=> $b } keys %main_conns) {
        my ($module) = stat_of("module/w$w\t$c", 'rps');
        my ($headers) = stat_of("limit_req_headers/w$w\t$c", 'rps');
        my ($limit) = stat_of("limit_req/w$w\t$c", 'rps');
        next unless defined $module && $headers && $limit;
        push @header_lines, sprintf "| w%d, c%d | %+.1f%% | %+.1f%% |\n", $w, $c,
            100 * ($module - $headers) / $headers, 100 * ($headers - $limit) / $limit;
    }
}

for my $c (sort { $a <=> $b } keys %main_conns) {
    my ($full) = stat_of("stream/w1\t$c", 'ttft_p50_ms');
    my ($bare) = stat_of("nginx_stream/w1\t$c", 'ttft_p50_ms');
    next unless defined $full || defined $bare;
    my $added = defined $full && defined $bare ? $full - $bare : undef;
    target_line("streaming TTFT <= bare nginx + 0.2 ms (w1, c$c)",
        defined $added ? $added <= 0.2 : undef,
        defined $added ? sprintf('%+.3f ms (p50 %s vs %s ms)', $added, fmt($full, 3),
            fmt($bare, 3)) : '-');
}

# The same line under an open load, where both carry the same streams/s.
{
    my ($full_key) = grep { /^stream_rate\/w1\t/ } @order;
    my ($bare_key) = grep { /^nginx_stream_rate\/w1\t/ } @order;
    if ($full_key || $bare_key) {
        my ($full) = $full_key ? stat_of($full_key, 'ttft_p50_ms') : ();
        my ($bare) = $bare_key ? stat_of($bare_key, 'ttft_p50_ms') : ();
        my ($rate) = ($meta{settings} // '') =~ /BENCH_STREAM_RATE=(\d+)/;
        my $added = defined $full && defined $bare ? $full - $bare : undef;
        target_line(sprintf('streaming TTFT <= bare nginx + 0.2 ms (w1, open load %s streams/s)',
                $rate // '?'),
            defined $added ? $added <= 0.2 : undef,
            defined $added ? sprintf('%+.3f ms (p50 %s vs %s ms)', $added, fmt($full, 3),
                fmt($bare, 3)) : '-');
    }
}

# The verdict holds only for the connection counts that ran, so the line
# names the run with the highest peak.
my ($peak_row) = sort { $b->{worker_rss_kb} <=> $a->{worker_rss_kb} }
    grep { $_->{worker_rss_kb} ne '-' } @rows;
my $worker_peak = $peak_row ? $peak_row->{worker_rss_kb} : undef;
target_line('worker peak RSS under load < 32 MB', defined $worker_peak ? $worker_peak < 32 * 1024 : undef,
    defined $worker_peak ? sprintf('%.1f MB (%s, c%s)', $worker_peak / 1024, $peak_row->{id},
        $peak_row->{conns}) : '-');


if (@header_lines) {
    print "\n### The module against limit_req with its headers\n\n",
        "limit_req_headers is limit_req with the three RateLimit-* answer headers that the ",
        "module sends. Not a target.\n\n",
        "| nginx workers, conns | module req/s against limit_req_headers | limit_req_headers against limit_req |\n",
        "| --- | --- | --- |\n", @header_lines;
}

if (@skips) {
    print "\n### Skipped\n\n";
    print "- $_->{case}: ", $_->{note} =~ s/^skipped: //r, "\n" for @skips;
}
