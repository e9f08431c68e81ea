// Streams a chat through the gateway with the official openai SDK, as a
// client application would, and prints one JSON line per case for
// t/stream_openai_sdk.t to check.
//
// Environment: CHATGATE_URL (the gateway), CHATGATE_KEY (a BYOK provider
// key), CHATGATE_NODE_MODULES (the folder that contains the openai package).

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.CHATGATE_NODE_MODULES;
const { default: OpenAI } = await import(
    pathToFileURL(join(modules, 'openai', 'index.mjs')).href);

const client = new OpenAI({
    apiKey: process.env.CHATGATE_KEY,
    baseURL: `${process.env.CHATGATE_URL}/v1`,
    maxRetries: 0,
    timeout: 20000,
});

function report(name, fields) {
    console.log(JSON.stringify({ case: name, ...fields }));
}

async function collect(model, content, options = {}) {
    const stream = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content }],
        stream: true,
        ...options,
    });
    let text = '';
    let chunks = 0;
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
        usage = chunk.usage ?? usage;
    }
    return { text, chunks, usage, finish_reason: finish };
}

async function openaiStream() {
    report('openai_stream', await collect('openai/gpt-4o-mini',
        'stream from the openai sdk', { stream_options: { include_usage: true } }));
}

async function anthropicStream() {
    report('anthropic_stream', await collect('anthropic/claude-3-5-haiku',
        'anthropic through the sdk'));
}

async function midStreamError() {
    try {
        await collect('openai/gpt-4o-mini', '[emu chunks=4 error_at=2] break the sdk stream');
        report('mid_stream_error', { thrown: false });
    } catch (err) {
        report('mid_stream_error', { thrown: true, message: String(err.message ?? err) });
    }
}

for (const run of [openaiStream, anthropicStream, midStreamError]) {
    try {
        await run();
    } catch (err) {
        report(run.name, { failed: String(err) });
        process.exitCode = 1;
    }
}
