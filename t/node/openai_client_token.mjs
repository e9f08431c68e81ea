// Talks to the gateway with the official openai SDK and a client token (a
// gateway JWT from POST /admin/api/tokens) as its API key, and prints one
// JSON line per case for t/auth_e2e.t to check.
//
// Environment: CHATGATE_URL (the gateway), CHATGATE_TOKEN (the client
// token), CHATGATE_MODEL (a model the token allows), CHATGATE_OTHER_MODEL
// (one it does not), CHATGATE_NODE_MODULES (the folder that contains the
// openai package).

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.CHATGATE_NODE_MODULES;
const { default: OpenAI } = await import(
    pathToFileURL(join(modules, 'openai', 'index.mjs')).href);

const client = new OpenAI({
    apiKey: process.env.CHATGATE_TOKEN,
    baseURL: `${process.env.CHATGATE_URL}/v1`,
    maxRetries: 0,
    timeout: 20000,
});

function report(name, fields) {
    console.log(JSON.stringify({ case: name, ...fields }));
}

async function completion() {
    const res = await client.chat.completions.create({
        model: process.env.CHATGATE_MODEL,
        messages: [{ role: 'user', content: 'hello from a client token' }],
    });
    report('completion', {
        object: res.object,
        content: res.choices[0]?.message?.content,
    });
}

async function otherModel() {
    try {
        await client.chat.completions.create({
            model: process.env.CHATGATE_OTHER_MODEL,
            messages: [{ role: 'user', content: 'a model the token does not allow' }],
        });
        report('other_model', { thrown: false });
    } catch (err) {
        report('other_model', {
            thrown: true,
            status: err.status,
            type: err.error?.type ?? null,
        });
    }
}

for (const run of [completion, otherModel]) {
    try {
        await run();
    } catch (err) {
        report(run.name, { failed: String(err) });
        process.exitCode = 1;
    }
}
