// The machinery the scenario files (deltachat.test.mjs, coi.test.mjs,
// federation.test.mjs) share: a Device is one Delta Chat profile in its own
// deltachat-rpc-server process; scenario runs one step and prints every device's
// client log when it fails; record keeps the latencies printed at the end; noWarnings
// is the closing check that no client logged a Warning or Error.
//
// Variables read here (the scenario files read their own):
//
// DC_WORK_DIR             where profiles, logs and generated files go (default: a new
//                         temporary directory). A profile left there by an earlier run
//                         is opened again (Device.open).
// DC_ARRIVAL_TIMEOUT_MS   how long one arrival may take (default 60000)
// DC_RUST_LOG             RUST_LOG of the rpc servers (default: the IMAP and SMTP wire
//                         exchange, kept in DC_WORK_DIR/<device>.wire.log)

import { it, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { getRPCServerPath } from "@deltachat/stdio-rpc-server";
import { C, StdioDeltaChat } from "@deltachat/jsonrpc-client";

export const env = process.env;
export const ARRIVAL_MS = Number(env.DC_ARRIVAL_TIMEOUT_MS || 60000);
export const WORK =
  env.DC_WORK_DIR || fs.mkdtempSync(path.join(os.tmpdir(), "coibox-dc-"));
const RUST_LOG = env.DC_RUST_LOG || "warn,async_imap=trace,async_smtp=debug";
const DUMP_MAX = 2000; // most log lines printed for one failed scenario
const LINE_MAX = 600; // wire lines are cut to this many characters when printed

// port reads the TCP port in the environment variable name.
export function port(name) {
  const v = Number(env[name]);
  if (!Number.isInteger(v) || v <= 0 || v > 65535) {
    throw new Error(`${name} must be set to a TCP port (got ${JSON.stringify(env[name])})`);
  }
  return v;
}

const LOG_KINDS = new Set(["Info", "Warning", "Error", "ErrorSelfNotInGroup"]);
const NOTE_KINDS = new Set([
  "ConfigureProgress", "ImexProgress", "ImexFileWritten", "SecurejoinInviterProgress",
  "SecurejoinJoinerProgress", "IncomingMsg", "MsgRead", "MsgDelivered", "MsgFailed",
  "ImapInboxIdle", "ImapConnected", "SmtpConnected", "SmtpMessageSent", "ImapMessageDeleted",
]);

// BENIGN are Warning/Error events that do not point at the server.
const BENIGN = [];

const t0 = Date.now();
const stamp = (t) => ((t - t0) / 1000).toFixed(3).padStart(8);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// devices are every Device made in this run, by name; failure reports and the closing
// checks go through them all.
export const devices = {};

// Device is one profile: one rpc server process, one account in it. It keeps every event
// with its arrival time, so a test can wait for an event that happened before it started
// waiting (mark() before acting, waitFor(..., since) after), and a log for failure
// reports: the client's Info/Warning/Error events and the IMAP/SMTP wire exchange that
// the rpc server traces on its stderr. Its address is known once it is configured (or
// opened, or imported).
export class Device {
  constructor(name) {
    this.name = name;
    this.addr = null;
    this.dir = path.join(WORK, name);
    fs.mkdirSync(this.dir, { recursive: true });
    this.logFile = path.join(WORK, `${name}.log`);
    // A profile opened again by a later run appends to the logs of the earlier one.
    this.wireFile = fs.createWriteStream(path.join(WORK, `${name}.wire.log`), { flags: "a" });
    this.events = [];
    this.log = [];
    this.waiters = new Set();
    this.exited = null;
    this.closing = false;
    this.proc = spawn(getRPCServerPath(), [], {
      env: { DC_ACCOUNTS_PATH: this.dir, RUST_LOG, NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.proc.on("error", (err) => this.died(`rpc server: ${err.message}`));
    // Writing to a server that just exited fails with EPIPE: that is reported by the
    // exit, not as an uncaught exception.
    this.proc.stdin.on("error", (err) => this.died(`rpc server stdin: ${err.message}`));
    this.proc.on("exit", (code, sig) => this.died(`rpc server exited (code ${code}, signal ${sig})`));
    let rest = "";
    // The trace file is closed when the server's stderr ends, which is after the
    // process was told to stop: it may still write until then.
    this.proc.stderr.on("end", () => this.wireFile.end());
    this.proc.stderr.on("data", (chunk) => {
      if (!this.wireFile.writableEnded) this.wireFile.write(chunk);
      rest += chunk.toString();
      const lines = rest.split("\n");
      rest = lines.pop();
      for (const l of lines) this.onStderr(l);
    });
    this.dc = new StdioDeltaChat(this.proc.stdin, this.proc.stdout, true);
    this.rpc = this.dc.rpc;
    this.acc = 0;
    this.dc.on("ALL", (_acc, ev) => this.onEvent(ev));
    devices[name] = this;
  }

  died(why) {
    if (this.closing || this.exited) return;
    this.exited = why;
    this.note(why);
    for (const w of this.waiters) w();
  }

  // onStderr keeps a tracing line of the rpc server, at the time it carries, without
  // the lines that only say the IMAP decoder waits for more input.
  onStderr(raw) {
    const l = raw.replace(/\x1b\[[0-9;]*m/g, "");
    if (/decode: (incomplete data|input: Ok\(""\))/.test(l)) return;
    if (/ WARN pgp::packet::packet_sum: packet header mismatch/.test(l)) return; // noise of rpgp
    const m = /^(\S+Z)\s+(.*)$/.exec(l);
    const at = (m && Date.parse(m[1])) || Date.now();
    const text = (m ? m[2] : l).replace(/^(TRACE|DEBUG|INFO|WARN|ERROR)\s+/, "")
      .replace(/^async_imap::imap_stream: /, "imap ").replace(/^async_smtp::stream: /, "smtp ");
    const cut = text.length > LINE_MAX ? `${text.slice(0, LINE_MAX)}… (${text.length} chars)` : text;
    const entry = { at, line: `${stamp(at)} ${this.name.padEnd(6)} ~ ${cut}`, wire: text };
    // A reply that arrives in pieces is traced once per piece, each time with all of it
    // so far: keep only the last, complete one.
    // The IMAP decoder also traces what is left after each response it took off the
    // front: drop those repeats.
    const last = this.log[this.log.length - 1];
    const grows = /^(smtp << |imap decode: input: )/.test(text) && last?.wire?.startsWith(text.slice(0, 12)) &&
      text.startsWith(last.wire.replace(/"\)$/, ""));
    const rest = text.startsWith('imap decode: input: Ok("') && last?.wire?.startsWith('imap decode: input: Ok("') &&
      last.wire.endsWith(text.slice('imap decode: input: Ok("'.length));
    if (grows) {
      entry.at = last.at;
      this.log[this.log.length - 1] = entry;
    } else if (!rest) {
      this.log.push(entry);
    }
  }

  onEvent(ev) {
    const e = { ...ev, at: Date.now() };
    this.events.push(e);
    let line = null;
    if (LOG_KINDS.has(ev.kind)) line = `${ev.kind}: ${ev.msg}`;
    else if (NOTE_KINDS.has(ev.kind)) {
      const { kind, at, ...rest } = e;
      line = `[${kind}] ${JSON.stringify(rest)}`;
    }
    if (line !== null) {
      line = `${stamp(e.at)} ${this.name.padEnd(6)} ${line}`;
      this.log.push({ at: e.at, line });
      fs.appendFileSync(this.logFile, line + "\n");
    }
    for (const w of this.waiters) w();
  }

  note(text) {
    const at = Date.now();
    const line = `${stamp(at)} ${this.name.padEnd(6)} (test) ${text}`;
    this.log.push({ at, line });
    fs.appendFileSync(this.logFile, line + "\n");
  }

  mark() {
    return this.events.length;
  }

  // waitFor resolves with the first event at index >= since for which pred holds (pred
  // may be async); it rejects after timeout ms naming what was awaited.
  waitFor(what, pred, since = 0, timeout = ARRIVAL_MS) {
    return new Promise((resolve, reject) => {
      let i = since;
      let busy = false;
      let done = false;
      const finish = (fn, v) => {
        done = true;
        clearTimeout(timer);
        this.waiters.delete(check);
        fn(v);
      };
      const check = async () => {
        if (busy || done) return;
        if (this.exited) {
          finish(reject, new Error(`${this.name}: ${this.exited} while waiting for ${what}`));
          return;
        }
        busy = true;
        try {
          while (!done && i < this.events.length) {
            const ev = this.events[i++];
            if (await pred(ev)) {
              finish(resolve, ev);
              return;
            }
          }
        } catch (err) {
          finish(reject, err);
          return;
        } finally {
          busy = false;
        }
        if (!done && i < this.events.length) check();
      };
      const timer = setTimeout(
        () => finish(reject, new Error(`${this.name}: timed out after ${timeout} ms waiting for ${what}`)),
        timeout,
      );
      this.waiters.add(check);
      check();
    });
  }

  // waitIncoming waits for an IncomingMsg whose text is text (or, with prefix, starts
  // with it) and returns the message with the event's arrival time.
  async waitIncoming(text, since, { timeout = ARRIVAL_MS, prefix = false } = {}) {
    let msg;
    const ev = await this.waitFor(`IncomingMsg "${text}"`, async (e) => {
      if (e.kind !== "IncomingMsg") return false;
      msg = await this.rpc.getMessage(this.acc, e.msgId);
      if (msg.text === text || (prefix && msg.text.startsWith(text))) return true;
      this.note(`IncomingMsg ${e.msgId} is not the awaited one: ${JSON.stringify(msg.text)} state ${msg.downloadState}`);
      return false;
    }, since, timeout);
    return { msg, at: ev.at };
  }

  // newAccount adds the profile's account, unconfigured, with a display name.
  async newAccount(displayname) {
    this.acc = await this.rpc.addAccount();
    await this.rpc.batchSetConfig(this.acc, { displayname, mdns_enabled: "1" });
  }

  // configure makes the account from login parameters (addr, password, the servers,
  // their ports and security; the certificate is not checked), then starts IO and
  // waits for IDLE.
  async configure(displayname, param) {
    await this.newAccount(displayname);
    await this.rpc.addOrUpdateTransport(this.acc, {
      imapFolder: null,
      imapUser: null,
      smtpUser: null,
      smtpPassword: null,
      certificateChecks: "acceptInvalidCertificates",
      ...param,
    });
    await this.configured();
  }

  // configureFromQr makes the account from a dclogin: QR code, then starts IO and
  // waits for IDLE.
  async configureFromQr(displayname, qr) {
    await this.newAccount(displayname);
    const kind = await this.rpc.checkQr(this.acc, qr);
    assert.equal(kind.kind, "login", `${this.name}: the core reads ${JSON.stringify(qr)} as ${JSON.stringify(kind)}`);
    await this.rpc.addTransportFromQr(this.acc, qr);
    await this.configured();
  }

  async configured() {
    assert.equal(await this.rpc.isConfigured(this.acc), true, `${this.name} is not configured`);
    this.addr = await this.rpc.getConfig(this.acc, "addr");
    await this.startIo();
  }

  // open takes the account a profile of an earlier run left in this device's
  // directory, starts IO and waits for IDLE.
  async open() {
    const ids = await this.rpc.getAllAccountIds();
    assert.equal(ids.length, 1, `${this.name}: ${ids.length} accounts in ${this.dir}, want the one of the earlier run`);
    this.acc = ids[0];
    assert.equal(await this.rpc.isConfigured(this.acc), true, `${this.name}: the earlier run's account is not configured`);
    this.addr = await this.rpc.getConfig(this.acc, "addr");
    await this.startIo();
  }

  // startIo starts the connections and waits until the core idles in INBOX.
  async startIo() {
    const since = this.mark();
    await this.rpc.startIo(this.acc);
    await this.waitFor("ImapInboxIdle", (e) => e.kind === "ImapInboxIdle", since);
  }

  // close stops the rpc server and resolves when it has exited.
  close() {
    this.closing = true;
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      this.proc.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      this.proc.kill();
    });
  }
}

const latencies = [];
let prerequisitesFailed = false;
let anyFailed = false;

// record keeps one latency for the table printed at the end.
export function record(scenario, what, ms) {
  latencies.push({ scenario, what, ms });
}

// closeAll is the suite's after hook: it stops every device and prints the latencies
// between "latencies (ms):" and "end of latencies", where the Go test finds them.
export function closeAll() {
  after(async () => {
    await Promise.all(Object.values(devices).map((d) => d.close()));
    console.log("\nlatencies (ms):");
    const w = Math.max(10, ...latencies.map((l) => `${l.scenario} ${l.what}`.length));
    for (const l of latencies) {
      console.log(`  ${`${l.scenario} ${l.what}`.padEnd(w)} ${String(l.ms).padStart(7)}`);
    }
    console.log("end of latencies");
  });
}

// scenario runs body as one test; it prints the client logs of every device when it
// fails, and skips once a prerequisite scenario has failed. skip, if a string, skips
// the scenario saying why.
export function scenario(name, body, { prerequisite = false, skip = false } = {}) {
  const limit = 5 * ARRIVAL_MS;
  // node:test's own timeout is only the backstop: the race below fails the scenario
  // first, so that its log is printed and the scenarios that need it are skipped.
  it(name, { timeout: limit + 30000, skip }, async (t) => {
    if (prerequisitesFailed) {
      t.skip("an earlier prerequisite scenario failed");
      return;
    }
    const start = Date.now();
    let timer;
    try {
      await Promise.race([
        body(t),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`scenario took longer than ${limit} ms`)), limit);
        }),
      ]);
    } catch (err) {
      anyFailed = true;
      if (prerequisite) prerequisitesFailed = true;
      await sleep(1000); // events trail the failed call: let them arrive
      let lines = Object.values(devices).flatMap((d) => d.log.filter((l) => l.at >= start - 50));
      lines.sort((a, b) => a.at - b.at);
      console.log(`\n----- client logs during "${name}": events, and "~" the IMAP/SMTP wire -----`);
      if (lines.length > DUMP_MAX) {
        console.log(`(only the last ${DUMP_MAX} of ${lines.length} lines)`);
        lines = lines.slice(-DUMP_MAX);
      }
      for (const l of lines) console.log(l.line);
      console.log(`----- end of client logs (all of them: ${WORK}/*.log) -----\n`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  });
}

// noWarnings is the closing check. A server can pass every scenario and still trip the
// client up: a reply the core cannot parse costs a reconnect and a second or two, a
// refused command a retry. The core reports those as Warning or Error events.
export function noWarnings(name) {
  it(name, (t) => {
    if (anyFailed) {
      t.skip("a scenario failed; its report has the client log");
      return;
    }
    const bad = Object.values(devices).flatMap((d) =>
      d.log.filter((l) => /^ *[0-9.]+ \S+ +(Warning|Error|ErrorSelfNotInGroup):/.test(l.line)
        && !BENIGN.some((re) => re.test(l.line))));
    bad.sort((a, b) => a.at - b.at);
    assert.deepEqual(bad.map((l) => l.line), [], "the client logged warnings or errors");
  });
}

// sendText sends text from device `from` in chat chatId and returns the message id and
// the time it was handed to the core.
export async function sendText(from, chatId, text) {
  const at = Date.now();
  const id = await from.rpc.miscSendTextMessage(from.acc, chatId, text);
  return { id, at };
}

// unique is text with a random tail, so that every awaited message is told apart.
export const unique = (text) => `${text} ${crypto.randomUUID()}`;

export async function sha256File(p) {
  return crypto.createHash("sha256").update(await fs.promises.readFile(p)).digest("hex");
}

// secureJoin has joiner scan inviter's QR code and waits until both report success;
// it records both times under scenario and returns each side's contact of the other.
export async function secureJoin(scenarioNo, inviter, joiner) {
  const qr = await inviter.rpc.getChatSecurejoinQrCode(inviter.acc, null);
  const mi = inviter.mark();
  const mj = joiner.mark();
  const start = Date.now();
  await joiner.rpc.secureJoin(joiner.acc, qr);
  const [inv, join] = await Promise.all([
    inviter.waitFor("SecurejoinInviterProgress 1000",
      (e) => e.kind === "SecurejoinInviterProgress" && e.progress === 1000, mi),
    joiner.waitFor("SecurejoinJoinerProgress 1000",
      (e) => e.kind === "SecurejoinJoinerProgress" && e.progress === 1000, mj),
  ]);
  record(scenarioNo, `securejoin ${inviter.name}<-${joiner.name} (joiner done)`, join.at - start);
  record(scenarioNo, `securejoin ${inviter.name}<-${joiner.name} (inviter done)`, inv.at - start);
  const joinerOnInviter = await inviter.rpc.getContact(inviter.acc, inv.contactId);
  const inviterOnJoiner = await joiner.rpc.getContact(joiner.acc, join.contactId);
  assert.equal(joinerOnInviter.address, joiner.addr);
  assert.equal(inviterOnJoiner.address, inviter.addr);
  assert.ok(joinerOnInviter.isVerified, `${inviter.name} does not see ${joiner.name} as verified`);
  assert.ok(inviterOnJoiner.isVerified, `${joiner.name} does not see ${inviter.name} as verified`);
  return { joinerOnInviter: inv.contactId, inviterOnJoiner: join.contactId };
}

// importCard has dev import who's vCard and returns the contact id; the contact must
// come with a key.
export async function importCard(dev, who) {
  const card = await who.rpc.makeVcard(who.acc, [C.DC_CONTACT_ID_SELF]);
  const [id] = await dev.rpc.importVcardContents(dev.acc, card);
  const c = await dev.rpc.getContact(dev.acc, id);
  assert.equal(c.address, who.addr);
  assert.ok(c.isKeyContact && c.e2eeAvail, `${dev.name}'s contact ${who.addr} has no key`);
  return id;
}

// exchange sends a new text from `from` to `to` in from's chat fromChat, waits for it
// and checks it is encrypted and from the right address. It records the latency and
// returns the received message.
export async function exchange(scenarioNo, from, fromChat, to, label = "") {
  const mt = to.mark();
  const text = unique(`${from.name} to ${to.name}${label}`);
  const sent = await sendText(from, fromChat, text);
  const got = await to.waitIncoming(text, mt);
  record(scenarioNo, `${from.name} -> ${to.name}${label}`, got.at - sent.at);
  assert.equal(got.msg.showPadlock, true, `${to.name}'s copy has no padlock`);
  assert.equal(got.msg.sender.address, from.addr);
  return { ...got, sent };
}

// postNew POSTs an empty body to https://host:port/new with the SNI and Host of domain,
// as Delta Chat does with a DCACCOUNT URL, and returns the status and the parsed JSON.
// (The test server's certificate is self-signed; plain HTTP would only redirect.)
export function postNew(host, port, domain) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port, servername: domain, rejectUnauthorized: false, method: "POST", path: "/new",
        headers: { Host: domain, "Content-Length": 0 }, timeout: 10000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode, type: res.headers["content-type"], json: JSON.parse(body) });
          } catch (err) {
            reject(new Error(`POST /new: status ${res.statusCode}, body ${JSON.stringify(body)}: ${err.message}`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("POST /new: no answer within 10 s")));
    req.on("error", reject);
    req.end();
  });
}

// connectedPorts are the ports of every IMAP and SMTP connection dev's core attempted,
// from its log ("IMAP trying to connect to host:port:security").
export function connectedPorts(dev) {
  const out = { imap: new Set(), smtp: new Set() };
  for (const l of dev.log) {
    const m = / (IMAP|SMTP) trying to connect to \S+?:(\d+):/.exec(l.line);
    if (m) out[m[1].toLowerCase()].add(Number(m[2]));
  }
  return out;
}
