#!/usr/bin/env node
// Measures the SMSC peer's own ceiling: a Node SMPP client (npm `smpp`) submitting N messages
// with W in flight and answering the receipts. Used by bench/messaging.py beside the Python
// figures, so a slow peer is not mistaken for a slow client.
//
// Usage: node loadgen.js --port P --count N --window W [--system-id id --password pw]
// Prints one JSON line: {"count":N,"window":W,"submit_s":…,"receipts_s":…}
'use strict';

const smpp = require('smpp');

function args(argv) {
  const out = { host: '127.0.0.1', port: 2775, count: 1000, window: 10,
    systemId: 'contactd', password: 'secret' };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[++i];
    if (key === '--port') out.port = Number(value);
    else if (key === '--host') out.host = value;
    else if (key === '--count') out.count = Number(value);
    else if (key === '--window') out.window = Number(value);
    else if (key === '--system-id') out.systemId = value;
    else if (key === '--password') out.password = value;
    else throw new Error('unknown argument ' + key);
  }
  return out;
}

const opts = args(process.argv.slice(2));
const session = smpp.connect({ host: opts.host, port: opts.port });
let sent = 0;
let acked = 0;
let receipts = 0;
let started = 0;
let submitDone = 0;
const timeout = setTimeout(() => {
  process.stderr.write(`timeout: ${acked} acked, ${receipts} receipts\n`);
  process.exit(1);
}, 120000);

function finish() {
  const now = process.hrtime.bigint();
  const result = {
    count: opts.count,
    window: opts.window,
    submit_s: Number(submitDone - started) / 1e9,
    receipts_s: Number(now - started) / 1e9,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  clearTimeout(timeout);
  session.unbind(() => session.close());
}

function pump() {
  while (sent < opts.count && sent - acked < opts.window) {
    const n = sent++;
    session.submit_sm({
      destination_addr: '4915100' + String(n).padStart(5, '0'),
      source_addr: 'LOADGEN',
      registered_delivery: 1,
      data_coding: 0,
      short_message: Buffer.from('load ' + n, 'latin1'),
    }, (pdu) => {
      if (pdu.command_status !== 0) {
        process.stderr.write('submit refused: ' + pdu.command_status + '\n');
        process.exit(1);
      }
      acked++;
      if (acked === opts.count) {
        submitDone = process.hrtime.bigint();
        if (receipts === opts.count) finish();
      }
      pump();
    });
  }
}

session.on('connect', () => {
  session.socket.setNoDelay(true);
  session.bind_transceiver({ system_id: opts.systemId, password: opts.password }, (pdu) => {
    if (pdu.command_status !== 0) {
      process.stderr.write('bind refused: ' + pdu.command_status + '\n');
      process.exit(1);
    }
    started = process.hrtime.bigint();
    pump();
  });
});
session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  receipts++;
  if (receipts === opts.count && acked === opts.count) finish();
});
session.on('error', (e) => {
  process.stderr.write(String(e) + '\n');
  process.exit(1);
});
