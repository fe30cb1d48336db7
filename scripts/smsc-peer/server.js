#!/usr/bin/env node
// A real SMPP 3.4 server (npm `smpp`) that contactd's tests and benchmarks talk to.
//
// It checks credentials, answers bind/submit_sm/enquire_link/unbind, sends delivery receipts,
// records what it received, and takes faults on demand through a small HTTP control API on
// loopback: throttle (ESME_RTHROTTLED), queue full (ESME_RMSGQFUL), drop the connections,
// stop and restart the listener on the same port, inject a mobile-originated message.
//
// Usage: node server.js [--port 0] [--control-port 0] [--host 127.0.0.1]
//                       [--account system_id:password ...] [--no-record]
// Prints one line `READY smpp=<port> control=<port>` when both listeners are up.
'use strict';

const http = require('http');
const smpp = require('smpp');

const RAW = { encode: (v) => v, decode: (v) => v };
// Keep short_message as the bytes on the wire: the tests assert on UDH and encodings.
smpp.commands.submit_sm.params.short_message.filter = RAW;
smpp.commands.deliver_sm.params.short_message.filter = RAW;

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = { 0x0a: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2f: '\\', 0x3c: '[',
  0x3d: '~', 0x3e: ']', 0x40: '|', 0x65: '€' };

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, controlPort: 0, accounts: {}, record: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port') opts.port = Number(argv[++i]);
    else if (arg === '--control-port') opts.controlPort = Number(argv[++i]);
    else if (arg === '--host') opts.host = argv[++i];
    else if (arg === '--no-record') opts.record = false;
    else if (arg === '--account') {
      const [id, ...pw] = argv[++i].split(':');
      opts.accounts[id] = pw.join(':');
    } else throw new Error('unknown argument ' + arg);
  }
  if (Object.keys(opts.accounts).length === 0) opts.accounts.contactd = 'secret';
  return opts;
}

function decodeGsm(buf) {
  let out = '';
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x1b && i + 1 < buf.length) {
      out += GSM_EXT[buf[++i]] || ' ';
    } else {
      out += GSM_BASIC[buf[i] & 0x7f];
    }
  }
  return out;
}

function decodeUcs2(buf) {
  const swapped = Buffer.from(buf);
  if (swapped.length % 2) return '\ufffd';
  swapped.swap16();
  return swapped.toString('utf16le');
}

function decodeText(dataCoding, buf) {
  const coding = dataCoding & 0x0f;
  if (dataCoding === 0x08 || coding === 0x08) return decodeUcs2(buf);
  if (dataCoding === 0x00) return decodeGsm(buf);
  return buf.toString('latin1');
}

// Splits a user data header off the payload and reads the 8- or 16-bit concatenation element.
function splitUdh(esmClass, buf) {
  if (!(esmClass & 0x40) || buf.length === 0) return { udh: null, concat: null, body: buf };
  const udhLen = buf[0] + 1;
  const udh = buf.subarray(0, udhLen);
  let concat = null;
  for (let i = 1; i + 1 < udhLen; ) {
    const iei = udh[i];
    const len = udh[i + 1];
    const data = udh.subarray(i + 2, i + 2 + len);
    if (iei === 0x00 && len === 3) concat = { ref: data[0], total: data[1], seq: data[2] };
    if (iei === 0x08 && len === 4) {
      concat = { ref: data.readUInt16BE(0), total: data[2], seq: data[3] };
    }
    i += 2 + len;
  }
  return { udh, concat, body: buf.subarray(udhLen) };
}

function smppTime(date) {
  const p = (n) => String(n).padStart(2, '0');
  return p(date.getUTCFullYear() % 100) + p(date.getUTCMonth() + 1) + p(date.getUTCDate()) +
    p(date.getUTCHours()) + p(date.getUTCMinutes());
}

const RECEIPT_STATE = { DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6,
  UNKNOWN: 7, REJECTD: 8 };

function defaultConfig() {
  return {
    receipts: true,
    receipt_delay_ms: 0,
    receipt_stat: {}, // destination -> stat (e.g. UNDELIV) for failed-delivery tests
    throttle_next: 0, // answer the next N submit_sm with ESME_RTHROTTLED
    queue_full_next: 0, // answer the next N submit_sm with ESME_RMSGQFUL
    throttle_above_per_second: 0, // throttle whatever exceeds this rate per account
    reject_next: 0, // answer the next N submit_sm with reject_status
    reject_status: 0x45, // ESME_RSUBMITFAIL
  };
}

class Smsc {
  constructor(opts) {
    this.opts = opts;
    this.port = opts.port;
    this.startedAt = Date.now();
    this.nextId = 1;
    this.server = null;
    this.sessions = new Set();
    this.reset();
  }

  reset() {
    this.config = defaultConfig();
    this.submits = [];
    this.mo = [];
    this.raw = new Map(); // sequence -> answer to a raw PDU written by POST /raw (null: none yet)
    this.counts = { binds: 0, bind_failures: 0, submits: 0, throttled: 0, queue_full: 0,
      rejected: 0, receipts_sent: 0, receipts_acked: 0, enquire_links: 0, unbinds: 0 };
    this.arrivals = {}; // system_id -> arrival times (ms) of accepted submits
    this.pendingReceipts = {}; // system_id -> receipts whose session closed before sending
    this.recent = {}; // system_id -> arrival times in the last second (for throttling)
  }

  listen() {
    return new Promise((resolve, reject) => {
      if (this.server) return resolve(this.port);
      const server = smpp.createServer((session) => this.onSession(session));
      server.on('error', reject);
      server.listen(this.port, this.opts.host, () => {
        this.port = server.address().port;
        this.server = server;
        resolve(this.port);
      });
    });
  }

  // Graceful: stop reading, flush the answers already given, then close (like an SMSC going
  // down for maintenance). Abrupt: destroy the sockets with whatever is in flight.
  stop(abrupt) {
    return new Promise((resolve) => {
      const server = this.server;
      this.server = null;
      this.dropSessions(abrupt);
      if (!server) return resolve();
      server.close(() => resolve());
    });
  }

  dropSessions(abrupt) {
    for (const session of this.sessions) {
      // Paused: PDUs not yet read stay unanswered (the client must resend them); answers
      // already written are flushed before the FIN. A paused socket never sees the peer's
      // FIN, so it is destroyed once our side is flushed.
      session.pause();
      if (abrupt) session.destroy();
      else session.socket.end(() => session.destroy());
    }
    this.sessions.clear();
  }

  onSession(session) {
    session.bound = null;
    session.unacked = new Map(); // sequence -> receipt not yet answered with deliver_sm_resp
    this.sessions.add(session);
    session.socket.setNoDelay(true);
    session.on('close', () => {
      this.sessions.delete(session);
      // Unanswered receipts are delivered again after the next bind, as an SMSC does.
      for (const receipt of session.unacked.values()) {
        (this.pendingReceipts[receipt.system_id] =
          this.pendingReceipts[receipt.system_id] || []).push(receipt);
      }
      session.unacked.clear();
    });
    session.on('error', () => this.sessions.delete(session));
    const onBind = (mode) => (pdu) => {
      const expected = this.opts.accounts[pdu.system_id];
      if (expected === undefined || expected !== pdu.password) {
        this.counts.bind_failures++;
        const status = expected === undefined ? smpp.ESME_RINVSYSID : smpp.ESME_RINVPASWD;
        session.send(pdu.response({ command_status: status }));
        session.close();
        return;
      }
      this.counts.binds++;
      session.bound = { mode, system_id: pdu.system_id };
      session.send(pdu.response({ system_id: 'contactd-smsc-peer' }));
      if (mode !== 'transmitter') {
        // Like a real SMSC, receipts wait for the account's next receiver bind.
        const waiting = this.pendingReceipts[pdu.system_id] || [];
        delete this.pendingReceipts[pdu.system_id];
        for (const receipt of waiting) this.sendReceipt(session, receipt);
      }
    };
    session.on('bind_transceiver', onBind('transceiver'));
    session.on('bind_transmitter', onBind('transmitter'));
    session.on('bind_receiver', onBind('receiver'));
    session.on('enquire_link', (pdu) => {
      this.counts.enquire_links++;
      session.send(pdu.response());
    });
    session.on('unbind', (pdu) => {
      this.counts.unbinds++;
      session.send(pdu.response());
      session.close();
    });
    session.on('submit_sm', (pdu) => this.onSubmit(session, pdu));
    session.on('deliver_sm_resp', (pdu) => this.onDeliverResp(session, pdu));
    session.on('unknown', (pdu) => session.send(pdu.response()));
    session.on('pdu', (pdu) => {
      if (this.raw.get(pdu.sequence_number) === null) {
        this.raw.set(pdu.sequence_number, { command: pdu.command, status: pdu.command_status });
      }
    });
  }

  refuse(session, pdu) {
    const cfg = this.config;
    if (cfg.throttle_next > 0) {
      cfg.throttle_next--;
      this.counts.throttled++;
      return smpp.ESME_RTHROTTLED;
    }
    if (cfg.queue_full_next > 0) {
      cfg.queue_full_next--;
      this.counts.queue_full++;
      return smpp.ESME_RMSGQFUL;
    }
    if (cfg.reject_next > 0) {
      cfg.reject_next--;
      this.counts.rejected++;
      return cfg.reject_status;
    }
    if (cfg.throttle_above_per_second > 0) {
      const now = Date.now();
      const id = session.bound.system_id;
      const recent = (this.recent[id] = (this.recent[id] || []).filter((t) => now - t < 1000));
      if (recent.length >= cfg.throttle_above_per_second) {
        this.counts.throttled++;
        return smpp.ESME_RTHROTTLED;
      }
      recent.push(now);
    }
    return 0;
  }

  onSubmit(session, pdu) {
    if (!session.bound || session.bound.mode === 'receiver') {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const status = this.refuse(session, pdu);
    if (status) {
      session.send(pdu.response({ command_status: status }));
      return;
    }
    const messageId = this.startedAt.toString(36) + '-' + (this.nextId++).toString(16);
    session.send(pdu.response({ message_id: messageId }));
    this.counts.submits++;
    const id = session.bound.system_id;
    (this.arrivals[id] = this.arrivals[id] || []).push(Date.now());
    const raw = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : Buffer.alloc(0);
    if (this.opts.record) {
      const { udh, concat, body } = splitUdh(pdu.esm_class, raw);
      this.submits.push({
        message_id: messageId,
        system_id: id,
        sequence_number: pdu.sequence_number,
        source_addr: pdu.source_addr,
        destination_addr: pdu.destination_addr,
        esm_class: pdu.esm_class,
        data_coding: pdu.data_coding,
        registered_delivery: pdu.registered_delivery,
        udh: udh ? udh.toString('hex') : null,
        concat,
        short_message_hex: raw.toString('hex'),
        text: decodeText(pdu.data_coding, body),
      });
    }
    if (this.config.receipts && (pdu.registered_delivery & 0x01)) {
      const receipt = this.makeReceipt(id, pdu, messageId);
      const send = () => this.sendReceipt(session, receipt);
      if (this.config.receipt_delay_ms > 0) setTimeout(send, this.config.receipt_delay_ms);
      else setImmediate(send);
    }
  }

  makeReceipt(systemId, submit, messageId) {
    const stat = this.config.receipt_stat[submit.destination_addr] || 'DELIVRD';
    const now = smppTime(new Date());
    const delivered = stat === 'DELIVRD' ? '001' : '000';
    const text = `id:${messageId} sub:001 dlvrd:${delivered} submit date:${now} ` +
      `done date:${now} stat:${stat} err:${stat === 'DELIVRD' ? '000' : '001'} text:`;
    return {
      system_id: systemId,
      source_addr: submit.destination_addr,
      destination_addr: submit.source_addr,
      esm_class: 0x04,
      data_coding: 0x00,
      short_message: Buffer.from(text, 'latin1'),
      receipted_message_id: messageId,
      message_state: RECEIPT_STATE[stat] || 7,
    };
  }

  sendReceipt(session, receipt) {
    let target = session;
    if (!this.sessions.has(target) || !target.bound || target.bound.mode === 'transmitter') {
      target = [...this.sessions].find((s) => s.bound && s.bound.mode !== 'transmitter' &&
        s.bound.system_id === receipt.system_id);
    }
    if (!target) {
      (this.pendingReceipts[receipt.system_id] =
        this.pendingReceipts[receipt.system_id] || []).push(receipt);
      return;
    }
    const { system_id: _ignored, ...fields } = receipt;
    target.deliver_sm(fields);
    target.unacked.set(target.sequence, receipt);
    this.counts.receipts_sent++;
  }

  onDeliverResp(session, pdu) {
    if (session.unacked.has(pdu.sequence_number)) {
      if (pdu.command_status === 0) session.unacked.delete(pdu.sequence_number);
      this.counts.receipts_acked++;
      return;
    }
    const mo = this.mo.find((m) => m.sequence_number === pdu.sequence_number && m.status === null);
    if (mo) mo.status = pdu.command_status;
  }

  injectMo(body) {
    const coding = body.data_coding === undefined ? null : body.data_coding;
    const text = String(body.text || '');
    let dataCoding = coding;
    let payload;
    if (dataCoding === null) {
      const gsm = [...text].every((ch) => GSM_BASIC.includes(ch) && ch !== '\x1b');
      dataCoding = gsm ? 0x00 : 0x08;
    }
    if (dataCoding === 0x08) {
      payload = Buffer.from(text, 'utf16le').swap16();
    } else {
      payload = Buffer.from([...text].map((ch) => Math.max(GSM_BASIC.indexOf(ch), 0x20)));
    }
    let sent = 0;
    for (const session of this.sessions) {
      if (!session.bound || session.bound.mode === 'transmitter') continue;
      if (body.system_id && session.bound.system_id !== body.system_id) continue;
      const record = { source_addr: body.source_addr, destination_addr: body.destination_addr,
        text, data_coding: dataCoding, sequence_number: null, status: null };
      session.deliver_sm({
        source_addr: body.source_addr,
        source_addr_ton: Number(body.source_addr_ton || 0),
        source_addr_npi: Number(body.source_addr_npi || 0),
        destination_addr: body.destination_addr || '',
        esm_class: 0x00,
        data_coding: dataCoding,
        short_message: payload,
      });
      record.sequence_number = session.sequence;
      this.mo.push(record);
      sent++;
    }
    return sent;
  }

  // Writes bytes as they are (an unknown or broken PDU) to every bound receiving session; the
  // answer carrying `sequence` is recorded for GET /raw.
  writeRaw(body) {
    const data = Buffer.from(String(body.hex || ''), 'hex');
    if (body.sequence !== undefined) this.raw.set(Number(body.sequence), null);
    let sent = 0;
    for (const session of this.sessions) {
      if (!session.bound || session.bound.mode === 'transmitter') continue;
      session.socket.write(data);
      sent++;
    }
    return sent;
  }

  // The most accepted submits any account had inside one sliding second.
  maxPerSecond() {
    const out = {};
    for (const [id, times] of Object.entries(this.arrivals)) {
      let best = 0;
      let lo = 0;
      for (let hi = 0; hi < times.length; hi++) {
        while (times[hi] - times[lo] >= 1000) lo++;
        best = Math.max(best, hi - lo + 1);
      }
      out[id] = best;
    }
    return out;
  }

  state() {
    return {
      listening: this.server !== null,
      port: this.port,
      sessions: [...this.sessions].filter((s) => s.bound).length,
      counts: this.counts,
      config: this.config,
      max_per_second: this.maxPerSecond(),
    };
  }
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(raw ? JSON.parse(raw) : {});
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

function control(smsc) {
  const routes = {
    'GET /state': async () => smsc.state(),
    'GET /submits': async (body, url) => {
      const since = Number(url.searchParams.get('since') || 0);
      return { submits: smsc.submits.slice(since), total: smsc.submits.length };
    },
    'GET /mo': async () => ({ mo: smsc.mo }),
    'POST /reset': async () => {
      for (const session of smsc.sessions) session.unacked.clear(); // nothing carries over
      smsc.dropSessions(true);
      smsc.reset();
      await smsc.listen();
      return smsc.state();
    },
    'POST /config': async (body) => {
      for (const key of Object.keys(body)) {
        if (!(key in smsc.config)) throw new Error('unknown setting ' + key);
      }
      Object.assign(smsc.config, body);
      return smsc.config;
    },
    'POST /drop': async () => {
      const n = smsc.sessions.size;
      smsc.dropSessions(true);
      return { dropped: n };
    },
    'POST /stop': async (body) => {
      await smsc.stop(Boolean(body.abrupt));
      return smsc.state();
    },
    'POST /start': async () => {
      await smsc.listen();
      return smsc.state();
    },
    'POST /mo': async (body) => ({ sent: smsc.injectMo(body) }),
    'POST /raw': async (body) => ({ sent: smsc.writeRaw(body) }),
    'GET /raw': async () => ({ answers: Object.fromEntries(smsc.raw) }),
  };
  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const route = routes[req.method + ' ' + url.pathname];
    let status = 200;
    let payload;
    try {
      if (!route) {
        status = 404;
        payload = { error: 'no such route' };
      } else {
        payload = await route(await readJson(req), url);
      }
    } catch (e) {
      status = 400;
      payload = { error: String(e && e.message ? e.message : e) };
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(payload));
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const smsc = new Smsc(opts);
  const smppPort = await smsc.listen();
  const ctl = control(smsc);
  await new Promise((resolve) => ctl.listen(opts.controlPort, opts.host, resolve));
  process.stdout.write(`READY smpp=${smppPort} control=${ctl.address().port}\n`);
  const shutdown = () => {
    smsc.stop(true).then(() => process.exit(0));
    ctl.close();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
