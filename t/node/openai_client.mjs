// Talks to the gateway with the official openai SDK, as a client application
// would, and prints one JSON line per case for t/chat_openai_sdk.t to check.
//
// Environment: CHATGATE_URL (the gateway, e.g. http://127.0.0.1:8080),
// CHATGATE_KEY (a BYOK provider key), CHATGATE_NODE_MODULES (the folder
// that contains the openai package).

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

async function completion() {
    const res = await client.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: [{ role: 'user', content: 'hello from the openai sdk' }],
    });
    report('completion', {
        object: res.object,
        content: res.choices[0]?.message?.content,
        finish_reason: res.choices[0]?.finish_reason,
        usage: res.usage,
    });
}

async function providerError() {
    try {
        await client.chat.completions.create({
            model: 'openai/gpt-4o-mini',
            messages: [{ role: 'user', content: '[emu status=500] fail for the sdk' }],
        });
        report('provider_error', { thrown: false });
    } catch (err) {
        report('provider_error', {
            thrown: true,
            api_error: err instanceof OpenAI.APIError,
            status: err.status,
            message: err.error?.message ?? null,
        });
    }
}

for (const run of [completion, providerError]) {
    try {
        await run();
    } catch (err) {
        report(run.name, { failed: String(err) });
        process.exitCode = 1;
    }
}
