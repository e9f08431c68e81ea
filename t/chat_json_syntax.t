#!/usr/bin/perl

# Chat bodies in the JSON that the worker's readers accept besides RFC 8259
# (yajl's comments, \v and \f as white space), with escapes in names and
# values, strings past 512 bytes and bodies past 4 KiB. Valid ones must
# reach the provider with the decoded text. Invalid ones must get a 400 in
# OpenAI's error format and never reach the provider.

use strict;
use warnings;

use Test::More;
use Chatgate::Test;

my $t = Chatgate::Test->new();
my $auth = { Authorization => 'Bearer ' . $t->key };

# Returns 1 when the body is {"error": {"message": ..., "type": ...}}.
sub is_openai_error {
    my ($r) = @_;
    my $error = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;
    return ref $error eq 'HASH' && length($error->{message} // '')
        && length($error->{type} // '');
}

# A body with the model and one user message, written as given.
sub body {
    my ($model, $content) = @_;
    return qq({"model": "$model", "messages": [{"role": "user", "content": "$content"}]});
}

# One string of 30 pieces with every kind of escape, about 20 KiB, and the
# text it decodes to.
my $long_json = join '', map { "x\\n\\u00e9\\ud83d\\ude00\\\"\\t\\/" . ('y' x 600) } 1 .. 30;
my $long_text = join '', map { "x\n\x{e9}\x{1f600}\"\t/" . ('y' x 600) } 1 .. 30;

# [ unit, model for the emulator, body, text the reply must start with ]
my @valid = (
    [ 'comments', 'gpt-4o-mini',
      qq(/* lead */ {"model" /* a */ : "openai/gpt-4o-mini", // line\n)
      . qq( "messages": [ /* x */ {"role": "user", "content": "comment body"} ] } // end),
      'comment body' ],
    [ 'comment to the end', 'gpt-4o-mini',
      body('openai/gpt-4o-mini', 'open comment') . ' /* no end', 'open comment' ],
    [ 'vertical tab and form feed', 'gpt-4o-mini',
      qq(\x0b{\x0c"model":\x0b"openai/gpt-4o-mini",\x0c"messages":)
      . qq([{"role":"user","content":"vt ff body"}]\x0b}\x0c),
      'vt ff body' ],
    [ 'escaped model', 'gpt-4o-mini',
      body('\u006fpenai\/gpt\u002d4o-mini', 'escaped model'), 'escaped model' ],
    [ 'escaped member names', 'gpt-4o-mini',
      qq({"\\u006dodel": "openai/gpt-4o-mini", "m\\u0065ssages": )
      . qq([{"r\\u006fle": "user", "c\\u006fntent": "escaped names"}]}),
      'escaped names' ],
    [ 'long escaped content', 'gpt-4o-mini',
      body('openai/gpt-4o-mini', $long_json), substr($long_text, 0, 100) ],
    [ 'long escaped content anthropic', 'claude-3-haiku-20240307',
      body('anthropic/claude-3-haiku-20240307', $long_json),
      substr($long_text, 0, 100) ],
    # 127 levels: yajl_gen() writes no more (YAJL_MAX_DEPTH in yajl 2.1.0)
    [ 'deep extra member', 'gpt-4o-mini',
      '{"model": "openai/gpt-4o-mini", "metadata_x": ' . ('[' x 126) . (']' x 126)
      . ', "messages": [{"role": "user", "content": "deep"}]}',
      'deep' ],
);

for my $case (@valid) {
    my ($unit, $model, $body, $start) = @$case;

    my @before = $t->emulator_requests();
    my $r = $t->request('POST', '/v1/chat/completions', headers => $auth,
                        body => $body);
    is($r->{status}, 200, "$unit status");

    my $reply = $r->{json}{choices}[0]{message}{content} // '';
    is(substr($reply, 0, length("emulator reply to: $start")),
       "emulator reply to: $start", "$unit reply text");

    my @after = $t->emulator_requests();
    is(scalar @after, @before + 1, "$unit reached the provider once");
    is($after[-1]{model}, $model, "$unit provider model");
}

# The same odd body, streamed.

my $r = $t->request('POST', '/v1/chat/completions', headers => $auth,
    body => qq(/* s */ {"model": "openai/gpt-4o-mini", "stream": true,\x0b)
        . qq( "messages": [{"role": "user", "content": "stream \\u00e9 $long_json"}]} // end));
is($r->{status}, 200, 'streamed comments status');
like($r->{headers}{'content-type'} // '', qr{^text/event-stream},
     'streamed comments content type');
like($r->{content} // '', qr/data: \[DONE\]/, 'streamed comments done');

# Invalid bodies.

my $lone = 'a' x 600 . '\ud800';
my @invalid = (
    [ 'lone surrogate in a long string',
      body('openai/gpt-4o-mini', $lone),
      'invalid JSON: invalid \u escape: a lone UTF-16 surrogate' ],
    [ 'bad escape in a long string',
      body('openai/gpt-4o-mini', ('a' x 600) . '\n\x'), undef ],
    [ 'raw vertical tab in a string',
      body('openai/gpt-4o-mini', "tab \x0b here"), undef ],
    [ 'bad utf-8 in a comment',
      body('openai/gpt-4o-mini', 'hi') . " /* \xff */",
      'invalid JSON: invalid UTF-8 at byte '
      . (length(body('openai/gpt-4o-mini', 'hi')) + 4) ],
    [ 'nul byte in a comment',
      body('openai/gpt-4o-mini', 'hi') . " /* \x00 */",
      'invalid JSON: NUL byte in the body' ],
    [ 'lone slash after the object',
      body('openai/gpt-4o-mini', 'hi') . ' /', undef ],
    [ 'unterminated string after a comment',
      body('openai/gpt-4o-mini', 'hi') . ' /* c */ "tail',
      'invalid JSON: parse error: trailing garbage' ],
    # 128 levels with the object: yajl_gen would refuse to write this body
    # again, so the readers reject it
    [ 'nesting of 128 levels',
      '{"model": "openai/gpt-4o-mini", "metadata_x": ' . ('[' x 127) . (']' x 127)
      . ', "messages": [{"role": "user", "content": "deep"}]}',
      'invalid JSON: nested deeper than 127 levels' ],
    [ 'nesting past the maximum',
      '{"model": "openai/gpt-4o-mini", "x": ' . ('[' x 128) . (']' x 128)
      . ', "messages": [{"role": "user", "content": "deep"}]}',
      'invalid JSON: nested deeper than 127 levels' ],
    [ 'nesting hidden by a comment',
      '{"model": "openai/gpt-4o-mini", /*"*/ "x": ' . ('[' x 128) . (']' x 128)
      . ' /*"*/, "messages": [{"role": "user", "content": "deep"}]}',
      'invalid JSON: nested deeper than 127 levels' ],
);

my $forwarded = $t->emulator_requests();

for my $case (@invalid) {
    my ($unit, $body, $message) = @$case;

    $r = $t->request('POST', '/v1/chat/completions', headers => $auth,
                     body => $body);
    is($r->{status}, 400, "$unit status");
    ok(is_openai_error($r), "$unit openai error body");
    is($r->{json}{error}{message}, $message, "$unit message") if defined $message;
}

is(scalar $t->emulator_requests(), $forwarded, 'invalid bodies not forwarded');

$t->finish;
