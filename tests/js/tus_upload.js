// Uploads a file to Parley with tus-js-client (the reference tus 1.0 client), the way a mobile app would, and
// optionally through a TCP proxy that cuts the link after `cut_after` bytes of the first connection that carries
// a body: tus-js-client then retries, asks the server for the offset (HEAD) and sends only the rest.
//
// Usage: node tus_upload.js '{"endpoint": "...", "token": "...", "file": "/path", "chunk_size": 0,
//                              "cut_after": 0, "timeout_ms": 30000}'
// Prints one JSON line: {"ok": bool, "url": ..., "error": ..., "requests": [[method, status, offset], ...],
//                        "proxied_bytes": n, "cuts": n}
'use strict';
const fs = require('fs');
const net = require('net');
const tus = require('tus-js-client');

const cfg = JSON.parse(process.argv[2]);
const result = { ok: false, url: null, error: null, requests: [], proxied_bytes: 0, cuts: 0 };
const done = (extra) => {
  Object.assign(result, extra);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.ok ? 0 : 1);
};
setTimeout(() => done({ error: 'timed out' }), cfg.timeout_ms || 30000).unref();

// A proxy on 127.0.0.1 in front of the server: the first connection to carry more than `cut_after` bytes
// upstream is destroyed there (both sides), as a phone losing its link mid-upload.
function startProxy(target, cutAfter) {
  return new Promise((resolve) => {
    let cut = false;
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      let sent = 0;
      client.on('data', (d) => {
        if (!cut && cutAfter > 0 && sent + d.length > cutAfter) {
          cut = true;
          result.cuts++;
          const part = d.subarray(0, cutAfter - sent);
          result.proxied_bytes += part.length;
          upstream.write(part, () => {
            upstream.destroy();
            client.destroy();
          });
          return;
        }
        sent += d.length;
        result.proxied_bytes += d.length;
        upstream.write(d);
      });
      upstream.on('data', (d) => client.write(d));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

(async () => {
  const url = new URL(cfg.endpoint);
  let endpoint = cfg.endpoint;
  if (cfg.cut_after) {
    const proxy = await startProxy({ host: url.hostname, port: Number(url.port) }, cfg.cut_after);
    proxy.unref();
    endpoint = `${url.protocol}//127.0.0.1:${proxy.address().port}${url.pathname}`;
  }
  const data = fs.readFileSync(cfg.file);
  const options = {
    endpoint,
    headers: { Authorization: `Bearer ${cfg.token}` },
    uploadSize: data.length,
    metadata: { filename: 'upload.bin', filetype: 'application/octet-stream' },
    retryDelays: [0, 200, 500, 1000],
    removeFingerprintOnSuccess: true,
    onAfterResponse: (req, res) => {
      const off = res.getHeader('Upload-Offset');
      result.requests.push([req.getMethod(), res.getStatus(), off === undefined ? null : Number(off)]);
    },
    onError: (err) => done({ error: String(err && err.message ? err.message : err) }),
    onSuccess: () => done({ ok: true, url: upload.url }),
  };
  if (cfg.chunk_size) options.chunkSize = cfg.chunk_size;
  const upload = new tus.Upload(data, options);
  upload.start();
})();
