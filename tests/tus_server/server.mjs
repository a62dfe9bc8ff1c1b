// SPDX-License-Identifier: Apache-2.0
// An agency's evidence store for the tests: the tus reference server (@tus/server + @tus/file-store)
// over TLS, behind a bearer token. Started and killed by tests/tus_fixture.py.
//
//   TUS_TOKEN=... node server.mjs --port P --cert C --key K --dir D
//                 [--checksum] [--corrupt-first-checksum] [--location absolute|relative|foreign]
//
// One JSON line per request on stdout ({method, path, status, offset, checksum}), so tests can see what
// the node sent (checksum: null when no Upload-Checksum came, else unverified, ok or mismatch). The token comes from the environment so it never shows in `ps`.
//
// @tus/server 2.4.5 does not implement the checksum extension; --checksum adds it in front of the
// reference server exactly as the tus 1.0 spec words it (OPTIONS lists `checksum` and the algorithm;
// a PATCH whose Upload-Checksum does not match its body is answered 460 and nothing is written).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    dir: { type: 'string' },
    checksum: { type: 'boolean', default: false },
    'corrupt-first-checksum': { type: 'boolean', default: false },
    location: { type: 'string', default: 'absolute' },
  },
});
const token = process.env.TUS_TOKEN;
if (!opt.port || !opt.cert || !opt.key || !opt.dir || !token) {
  console.error('usage: TUS_TOKEN=... node server.mjs --port P --cert C --key K --dir D [--checksum] ...');
  process.exit(2);
}

const store = new FileStore({ directory: opt.dir });
if (opt.checksum) {
  store.extensions.push('checksum');
}
const locations = {
  absolute: (_req, { host, path, id }) => `https://${host}${path}/${id}`,
  // A server that hands out upload URLs on another host: the node must refuse to send there.
  foreign: (_req, { path, id }) => `https://evidence.elsewhere.example${path}/${id}`,
};

const server = new Server({
  path: '/files',
  datastore: store,
  relativeLocation: opt.location === 'relative',
  generateUrl: locations[opt.location],
  async onIncomingRequest(req, id) {
    if (req.headers.get('authorization') !== `Bearer ${token}`) {
      throw { status_code: 401, body: 'Unauthorized: bad or missing bearer token\n' };
    }
    if (req.method === 'PATCH') {
      // Refused while the body is still on its way: @tus/server answers and closes the connection.
      const upload = await store.getUpload(id);
      if (upload.metadata?.filename === 'refuse.bin') {
        throw { status_code: 413, body: 'Request Entity Too Large: refuse.bin is not accepted by this store\n' };
      }
    }
  },
});

let corruptNext = opt['corrupt-first-checksum'];

async function withChecksum(req, res, record) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const [algorithm, digest] = req.headers['upload-checksum'].split(' ');
  const received = Buffer.from(body);
  if (corruptNext && received.length > 0) {
    corruptNext = false;
    received[0] ^= 0xff; // one byte damaged in transit
  }
  const plain = (status, text) => {
    res.writeHead(status, { 'Tus-Resumable': '1.0.0', 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (algorithm !== 'sha1') {
    record.checksum = `unsupported ${algorithm}`;
    return plain(400, 'Bad Request: unsupported checksum algorithm\n');
  }
  if (createHash('sha1').update(received).digest('base64') !== digest) {
    record.checksum = 'mismatch';
    return plain(460, 'Checksum Mismatch\n');
  }
  record.checksum = 'ok';
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  const response = await server.handleWeb(
    new Request(`https://${req.headers.host}${req.url}`, { method: 'PATCH', headers, body: received }),
  );
  const answer = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(answer);
}

function handle(req, res) {
  const record = {
    method: req.method,
    path: req.url,
    offset: req.headers['upload-offset'] ?? null,
    checksum: req.headers['upload-checksum'] === undefined ? null : 'unverified',
  };
  // Logged as the answer starts, before the client can read it (stdout is a file: console.log is synchronous).
  let logged = false;
  const logOnce = (status) => {
    if (!logged) {
      logged = true;
      console.log(JSON.stringify({ ...record, status }));
    }
  };
  const { writeHead, end } = res;
  res.writeHead = function (status, ...rest) {
    logOnce(status);
    return writeHead.call(this, status, ...rest);
  };
  res.end = function (...args) {
    logOnce(res.statusCode);
    return end.apply(this, args);
  };
  if (opt.checksum && req.method === 'OPTIONS') {
    res.setHeader('Tus-Checksum-Algorithm', 'sha1');
  }
  if (opt.checksum && req.method === 'PATCH' && req.headers['upload-checksum'] !== undefined
      && req.headers.authorization === `Bearer ${token}`) {
    withChecksum(req, res, record).catch((err) => {
      console.error(err);
      res.destroy();
    });
    return;
  }
  server.handle(req, res);
}

const tls = { cert: readFileSync(opt.cert), key: readFileSync(opt.key) };
const listener = https.createServer(tls, handle);
listener.on('error', (err) => {
  console.error(`listen failed: ${err.code ?? err.message}`);
  process.exit(err.code === 'EADDRINUSE' ? 3 : 1);
});
listener.listen(Number(opt.port), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: Number(opt.port) }));
});
