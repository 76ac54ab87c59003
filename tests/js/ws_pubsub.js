#!/usr/bin/env node
// MQTT.js against parleyd over WebSocket, run by tests/broker/test_websocket.py.
//
//   node ws_pubsub.js '{"url": "ws://127.0.0.1:PORT/mqtt", "protocolVersion": 5, "prefix": "t/abc"}'
//
// Options (JSON, one argument): url; protocolVersion (4 = MQTT 3.1.1, 5); prefix (a topic prefix of its
// own); expect (topics under prefix to wait for besides "<prefix>/js"; e.g. ["py"] for a retained message
// another client left there); ca (a CA file for wss://); headers (extra handshake headers, e.g. Origin);
// timeoutMs (default 8000).
//
// It connects, subscribes to "<prefix>/#" at QoS 1, publishes "<prefix>/js" at QoS 1 and waits until it
// has received that and every expected topic, then disconnects. It prints one line of JSON:
//   {"ok": bool, "error": str|null, "protocolVersion": n, "connack": {"sessionPresent", "reasonCode"},
//    "granted": [qos...], "published": bool, "received": [{"topic", "payload", "qos", "retain"}...],
//    "errors": [...]}
// and exits 0 if ok, 1 otherwise.
'use strict';

const fs = require('fs');
const mqtt = require('mqtt');

const cfg = JSON.parse(process.argv[2] || '{}');
const prefix = cfg.prefix || 'mqttjs/' + process.pid;
const wanted = new Set(['js', ...(cfg.expect || [])].map((t) => prefix + '/' + t));
const result = {
  ok: false,
  error: null,
  protocolVersion: cfg.protocolVersion,
  connack: null,
  granted: null,
  published: false,
  received: [],
  errors: [],
};

const options = {
  protocolVersion: cfg.protocolVersion || 4,
  clientId: 'mqttjs-' + process.pid + '-' + Date.now(),
  clean: true,
  keepalive: 30,
  reconnectPeriod: 0, // one attempt: a refusal must show, not be retried
  connectTimeout: 5000,
};
if (cfg.ca) options.ca = fs.readFileSync(cfg.ca);
if (cfg.headers) options.wsOptions = { headers: cfg.headers };

let done = false;
const client = mqtt.connect(cfg.url, options);

function finish(error) {
  if (done) return;
  done = true;
  clearTimeout(timer);
  result.error = error || null;
  result.ok = !error;
  const print = () => {
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.ok ? 0 : 1));
  };
  // end(force=false) sends DISCONNECT after in-flight messages; force it if that hangs.
  const hard = setTimeout(print, 2000);
  client.end(!!error, () => {
    clearTimeout(hard);
    print();
  });
}

const timer = setTimeout(() => finish('timeout; still waiting for ' + [...wanted].join(', ')),
  cfg.timeoutMs || 8000);

client.on('connect', (connack) => {
  result.connack = {
    sessionPresent: !!connack.sessionPresent,
    reasonCode: connack.reasonCode !== undefined ? connack.reasonCode : connack.returnCode,
  };
  client.subscribe(prefix + '/#', { qos: 1 }, (err, granted) => {
    if (err) return finish('subscribe: ' + err.message);
    result.granted = granted.map((g) => g.qos);
    client.publish(prefix + '/js', 'from mqtt.js v' + options.protocolVersion, { qos: 1 }, (err2) => {
      if (err2) return finish('publish: ' + err2.message);
      result.published = true;
    });
  });
});

client.on('message', (topic, payload, packet) => {
  result.received.push({ topic, payload: payload.toString(), qos: packet.qos, retain: !!packet.retain });
  wanted.delete(topic);
  if (wanted.size === 0) finish(null);
});

client.on('error', (err) => {
  result.errors.push(String(err && err.message ? err.message : err));
  finish('error: ' + String(err && err.message ? err.message : err));
});

client.on('close', () => {
  if (!done) finish('connection closed');
});
