// Sends chats one after the other over one HTTP/2 connection (prior
// knowledge, cleartext) and prints one JSON line per chat: status, bytes of
// the response body, milliseconds, and the connections opened so far.
//
// usage: node t/node/h2_chats.mjs URL KEY FILE...
// Each FILE contains one request body, sent to URL in the order given.

import http2 from 'node:http2';
import { readFileSync } from 'node:fs';

const [url, key, ...files] = process.argv.slice(2);
const target = new URL(url);
const session = http2.connect(target.origin);
let connects = 0;

session.on('connect', () => { connects++; });
session.on('error', (err) => {
    console.error(`HTTP/2 session to ${target.origin} failed: ${err.message}`);
    process.exit(1);
});

function chat(body) {
    return new Promise((resolve) => {
        const started = Date.now();
        const req = session.request({
            ':method': 'POST',
            ':path': target.pathname,
            'authorization': `Bearer ${key}`,
            'content-type': 'application/json',
        });
        let status = 0;
        let bytes = 0;

        req.setTimeout(10000, () => req.close(http2.constants.NGHTTP2_CANCEL));
        req.on('response', (headers) => { status = headers[':status']; });
        req.on('data', (chunk) => { bytes += chunk.length; });
        req.on('close', () => resolve({ status, bytes, ms: Date.now() - started }));
        req.on('error', () => {});
        req.end(body);
    });
}

for (const file of files) {
    const result = await chat(readFileSync(file));
    console.log(JSON.stringify({ ...result, connects }));
}

session.close();
