// End-to-end scenarios with the real Delta Chat core (deltachat-rpc-server 2.57.0) as the
// client of a running coibox. deltachat_test.go starts coibox and runs this file; to run
// it by hand against a server of your own, set the variables below and run
//
//	node --test-reporter=spec deltachat.test.mjs
//
// COIBOX_HOST             server address for IMAP and SMTP (default 127.0.0.1)
// COIBOX_DOMAIN           mail domain of the accounts (default coibox.test)
// COIBOX_IMAP_PORT        IMAP with STARTTLS
// COIBOX_IMAPS_PORT       IMAP with implicit TLS
// COIBOX_SUBMISSION_PORT  SMTP submission with STARTTLS
// COIBOX_SUBMISSIONS_PORT SMTP submission with implicit TLS
// COIBOX_HTTPS_PORT       HTTPS, which also carries IMAP and submission for clients
//                         asking for ALPN "imap" or "smtp" (chat.alpn443); scenario 9
//                         is skipped without it
// COIBOX_CHATMAIL=1       the domain is a chatmail domain: scenario 8 gets accounts
//                         from its /new, on
// COIBOX_HTTP_PORT        the plain HTTP port
// COIBOX_BIN, COIBOX_CONFIG
//                         the coibox binary and its config: scenario 8 checks that
//                         `coibox account list` shows the accounts (skipped if unset)
// COIBOX_PASSWORD_ALICE, COIBOX_PASSWORD_BOB, COIBOX_PASSWORD_CAROL, COIBOX_PASSWORD_DAVE
//                         passwords of alice@, bob@, carol@ and dave@ the domain
//
// and those harness.mjs reads (DC_WORK_DIR, DC_ARRIVAL_TIMEOUT_MS, DC_RUST_LOG).
//
// Each device is its own deltachat-rpc-server process with its own data directory. The
// three users reach the server through different listeners so that all four are used:
// alice IMAPS + SMTPS, bob IMAP STARTTLS + submission STARTTLS, carol IMAPS + submission
// STARTTLS; dave uses only the HTTPS port. Certificates are self-signed, so every
// profile accepts invalid certificates.

import { describe, before } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { C } from "@deltachat/jsonrpc-client";
import {
  env, WORK, ARRIVAL_MS, port, sleep, devices, Device, record, closeAll, scenario, noWarnings,
  sendText, sha256File, secureJoin, importCard, exchange, postNew, connectedPorts,
} from "./harness.mjs";

const HOST = env.COIBOX_HOST || "127.0.0.1";
const DOMAIN = env.COIBOX_DOMAIN || "coibox.test";
const CHATMAIL = env.COIBOX_CHATMAIL === "1";
const FILE_SIZE = 1 << 20; // the attachment of scenario 5: 1 MiB
// STATE carries the contact ids coi.test.mjs needs, when it runs after this file on
// the same profiles.
const STATE = path.join(WORK, "deltachat-state.json");

const LISTENERS = {
  imap: () => ({ imapPort: port("COIBOX_IMAP_PORT"), imapSecurity: "starttls" }),
  imaps: () => ({ imapPort: port("COIBOX_IMAPS_PORT"), imapSecurity: "ssl" }),
  submission: () => ({ smtpPort: port("COIBOX_SUBMISSION_PORT"), smtpSecurity: "starttls" }),
  submissions: () => ({ smtpPort: port("COIBOX_SUBMISSIONS_PORT"), smtpSecurity: "ssl" }),
};

const USERS = {
  alice: { imap: "imaps", smtp: "submissions" },
  bob: { imap: "imap", smtp: "submission" },
  carol: { imap: "imaps", smtp: "submission" },
};

// password is the password the Go test gave user.
function password(user) {
  const p = env[`COIBOX_PASSWORD_${user.toUpperCase()}`];
  assert.ok(p, `COIBOX_PASSWORD_${user.toUpperCase()} is not set`);
  return p;
}

// configureUser configures the device of one of USERS through its listeners.
async function configureUser(dev, user) {
  const u = USERS[user];
  await dev.configure(user[0].toUpperCase() + user.slice(1), {
    addr: `${user}@${DOMAIN}`,
    password: password(user),
    imapServer: HOST,
    smtpServer: HOST,
    ...LISTENERS[u.imap](),
    ...LISTENERS[u.smtp](),
  });
}

// dcloginServers is what scenario 8 appends to a dclogin: URL: the test domain is in
// no DNS, so the client is told the server's address, ports and security (chatmail
// spec §4: ih ip is sh sp ss).
function dcloginServers(imap, smtp) {
  const i = LISTENERS[imap]();
  const s = LISTENERS[smtp]();
  return `&ih=${HOST}&ip=${i.imapPort}&is=${i.imapSecurity}&sh=${HOST}&sp=${s.smtpPort}&ss=${s.smtpSecurity}`;
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe(`coibox with Delta Chat core`, () => {
  const ctx = {};

  before(async () => {
    console.log(`work dir ${WORK}, server ${HOST}, domain ${DOMAIN}${CHATMAIL ? " (chatmail)" : ""}`);
    for (const user of ["alice", "bob", "carol"]) new Device(user);
    const info = await devices.alice.rpc.getSystemInfo();
    console.log(`deltachat core ${info.deltachat_core_version}`);
  });
  closeAll();

  scenario("1. alice, bob and carol configure (explicit hosts, self-signed TLS)", async () => {
    await Promise.all(
      ["alice", "bob", "carol"].map(async (n) => {
        const start = Date.now();
        await configureUser(devices[n], n);
        record("1", `configure+idle ${n}`, Date.now() - start);
      }),
    );
  }, { prerequisite: true });

  scenario("2. keys: SecureJoin alice<->bob, vCards between carol and the others", async () => {
    const { alice, bob, carol } = devices;
    const sj = await secureJoin("2", alice, bob);
    ctx.bobOnAlice = sj.joinerOnInviter;
    ctx.aliceOnBob = sj.inviterOnJoiner;
    ctx.aliceOnCarol = await importCard(carol, alice);
    ctx.bobOnCarol = await importCard(carol, bob);
    ctx.carolOnAlice = await importCard(alice, carol);
    ctx.carolOnBob = await importCard(bob, carol);
    // coi.test.mjs opens alice's profile again and writes to carol.
    fs.writeFileSync(STATE, JSON.stringify({ carolOnAlice: ctx.carolOnAlice }));
  }, { prerequisite: true });

  scenario("3. alice -> bob text, bob -> alice encrypted reply", async () => {
    const { alice, bob } = devices;
    ctx.chatAB = await alice.rpc.createChatByContactId(alice.acc, ctx.bobOnAlice);
    let mb = bob.mark();
    const hello = `hello bob ${crypto.randomUUID()}`;
    const sent = await sendText(alice, ctx.chatAB, hello);
    const got = await bob.waitIncoming(hello, mb);
    record("3", "alice -> bob", got.at - sent.at);
    assert.equal(got.msg.showPadlock, true, "bob's copy has no padlock");
    assert.equal(got.msg.sender.address, alice.addr);
    ctx.chatBA = got.msg.chatId;
    await bob.rpc.acceptChat(bob.acc, ctx.chatBA);

    const ma = alice.mark();
    const reply = `hello alice ${crypto.randomUUID()}`;
    const sentR = await sendText(bob, ctx.chatBA, reply);
    const gotR = await alice.waitIncoming(reply, ma);
    record("3", "bob -> alice", gotR.at - sentR.at);
    assert.equal(gotR.msg.showPadlock, true, "alice's copy has no padlock");
    assert.equal(gotR.msg.chatId, ctx.chatAB, "bob's reply landed in another chat");
    assert.equal(gotR.msg.sender.address, bob.addr);
  }, { prerequisite: true });

  scenario("4. group of alice, bob and carol", async () => {
    const { alice, bob, carol } = devices;
    const gid = await alice.rpc.createGroupChat(alice.acc, "coibox e2e group", false);
    await alice.rpc.addContactToChat(alice.acc, gid, ctx.bobOnAlice);
    await alice.rpc.addContactToChat(alice.acc, gid, ctx.carolOnAlice);
    const text = `hello group ${crypto.randomUUID()}`;
    const [mb, mc] = [bob.mark(), carol.mark()];
    const sent = await sendText(alice, gid, text);
    const [gb, gc] = await Promise.all([bob.waitIncoming(text, mb), carol.waitIncoming(text, mc)]);
    record("4", "alice -> group: bob", gb.at - sent.at);
    record("4", "alice -> group: carol", gc.at - sent.at);
    for (const [d, g] of [[bob, gb], [carol, gc]]) {
      assert.equal(g.msg.showPadlock, true, `${d.name}'s group message has no padlock`);
      const chat = await d.rpc.getBasicChatInfo(d.acc, g.msg.chatId);
      assert.equal(chat.chatType, C.DC_CHAT_TYPE_GROUP, `${d.name} got it outside a group`);
      assert.equal(chat.name, "coibox e2e group");
      const members = await d.rpc.getChatContacts(d.acc, g.msg.chatId);
      assert.equal(members.length, 3, `${d.name} sees ${members.length} group members`);
      await d.rpc.acceptChat(d.acc, g.msg.chatId);
    }

    const reply = `bob to the group ${crypto.randomUUID()}`;
    const [ma, mc2] = [alice.mark(), carol.mark()];
    const sentR = await sendText(bob, gb.msg.chatId, reply);
    const [ra, rc] = await Promise.all([alice.waitIncoming(reply, ma), carol.waitIncoming(reply, mc2)]);
    record("4", "bob -> group: alice", ra.at - sentR.at);
    record("4", "bob -> group: carol", rc.at - sentR.at);
    assert.equal(ra.msg.chatId, gid, "bob's group reply is outside alice's group");
    assert.equal(rc.msg.chatId, gc.msg.chatId, "bob's group reply is outside carol's group");
    assert.equal(ra.msg.showPadlock && rc.msg.showPadlock, true, "group reply without padlock");
  });

  scenario("5. 1 MiB attachment alice -> bob", async () => {
    const { alice, bob } = devices;
    const file = path.join(WORK, "attachment.bin");
    fs.writeFileSync(file, crypto.randomBytes(FILE_SIZE));
    const want = await sha256File(file);
    const text = `a file ${crypto.randomUUID()}`;
    const mb = bob.mark();
    const at = Date.now();
    await alice.rpc.miscSendMsg(alice.acc, ctx.chatAB, text, file, "coibox-1MiB.bin", null, null);
    // The first arrival may be the pre-message, whose text ends in " [name – size]".
    const first = await bob.waitIncoming(text, mb, { prefix: true });
    record("5", "1 MiB: first arrival", first.at - at);
    // A large file may come as a small pre-message first and the file later; wait
    // until the message is downloaded in full.
    const deadline = Date.now() + ARRIVAL_MS;
    let msg = first.msg;
    while (msg.downloadState !== "Done" || !msg.file) {
      if (Date.now() > deadline) {
        assert.fail(`file not downloaded within ${ARRIVAL_MS} ms: downloadState ${msg.downloadState}`);
      }
      await sleep(100);
      msg = await bob.rpc.getMessage(bob.acc, first.msg.id);
    }
    if (msg !== first.msg) record("5", "1 MiB: fully downloaded", Date.now() - at);
    assert.equal(msg.text, text);
    assert.equal(msg.showPadlock, true, "attachment message has no padlock");
    assert.equal(msg.fileName, "coibox-1MiB.bin");
    assert.equal(msg.fileBytes, FILE_SIZE, "file size differs");
    assert.equal(await sha256File(msg.file), want, "file content differs");
  });

  scenario("6. read receipt bob -> alice (MsgRead)", async () => {
    const { alice, bob } = devices;
    const text = `please read ${crypto.randomUUID()}`;
    const mb = bob.mark();
    const sent = await sendText(alice, ctx.chatAB, text);
    const got = await bob.waitIncoming(text, mb);
    const ma = alice.mark();
    const seenAt = Date.now();
    await bob.rpc.markseenMsgs(bob.acc, [got.msg.id]);
    const ev = await alice.waitFor(`MsgRead for message ${sent.id}`,
      (e) => e.kind === "MsgRead" && e.msgId === sent.id, ma);
    record("6", "markseen -> MsgRead", ev.at - seenAt);
    const mine = await alice.rpc.getMessage(alice.acc, sent.id);
    assert.equal(mine.state, C.DC_STATE_OUT_MDN_RCVD, "alice's message is not marked read");
  });

  scenario("7. second device of bob (backup import): both receive, self-copy arrives", async () => {
    const { alice, bob } = devices;
    const backupDir = path.join(WORK, "backup");
    fs.mkdirSync(backupDir, { recursive: true });
    let mb = bob.mark();
    const start = Date.now();
    await bob.rpc.exportBackup(bob.acc, backupDir, null);
    const written = await bob.waitFor("ImexFileWritten", (e) => e.kind === "ImexFileWritten", mb);
    record("7", "export backup", Date.now() - start);

    const bob2 = new Device("bob2");
    bob2.acc = await bob2.rpc.addAccount();
    const istart = Date.now();
    await bob2.rpc.importBackup(bob2.acc, written.path, null);
    bob2.addr = await bob2.rpc.getConfig(bob2.acc, "addr");
    assert.equal(bob2.addr, bob.addr);
    await bob2.startIo();
    record("7", "import backup+idle", Date.now() - istart);
    // The exporting device must be running too (export may pause its IO).
    await bob.rpc.startIo(bob.acc);

    const text = `to both bobs ${crypto.randomUUID()}`;
    mb = bob.mark();
    const mb2 = bob2.mark();
    const sent = await sendText(alice, ctx.chatAB, text);
    const [g1, g2] = await Promise.all([bob.waitIncoming(text, mb), bob2.waitIncoming(text, mb2)]);
    record("7", "alice -> bob device 1", g1.at - sent.at);
    record("7", "alice -> bob device 2", g2.at - sent.at);
    assert.equal(g1.msg.showPadlock && g2.msg.showPadlock, true, "no padlock on a bob device");

    // Bob answers from device 1: alice receives it, and device 2 gets the self-copy.
    const reply = `bob from device 1 ${crypto.randomUUID()}`;
    const ma = alice.mark();
    const m2 = bob2.mark();
    const sentR = await sendText(bob, g1.msg.chatId, reply);
    const ra = await alice.waitIncoming(reply, ma);
    record("7", "bob1 -> alice", ra.at - sentR.at);
    let own;
    const ev = await bob2.waitFor(`self-copy "${reply}" on bob2`, async (e) => {
      if (e.kind !== "MsgsChanged" || !e.msgId) return false;
      own = await bob2.rpc.getMessage(bob2.acc, e.msgId);
      return own.text === reply;
    }, m2);
    record("7", "bob1 -> self-copy on bob2", ev.at - sentR.at);
    assert.equal(own.fromId, C.DC_CONTACT_ID_SELF, "the self-copy is not from self on bob2");
    assert.equal(own.chatId, g2.msg.chatId, "the self-copy is in another chat on bob2");
  });

  scenario("8. accounts from /new: three devices configure from its dclogin_url", async () => {
    const httpsPort = port("COIBOX_HTTPS_PORT");
    // Each new device reaches the server through other listeners.
    const via = [["imaps", "submissions"], ["imap", "submission"], ["imaps", "submission"]];
    const news = await Promise.all(via.map(async ([imap, smtp], i) => {
      const name = `new${i + 1}`;
      let start = Date.now();
      const r = await postNew(HOST, httpsPort, DOMAIN);
      record("8", `POST /new for ${name}`, Date.now() - start);
      assert.equal(r.status, 200, `POST /new: ${r.status} ${JSON.stringify(r.json)}`);
      assert.match(r.type, /^application\/json/);
      const { email, password: pw, dclogin_url: url } = r.json;
      assert.match(email, new RegExp(`^[a-z0-9]{9}@${escapeRe(DOMAIN)}$`), "the email /new made");
      assert.ok(typeof pw === "string" && pw.length > 9, `password ${JSON.stringify(pw)} is too short`);
      // A self-signed server hands out a dclogin: URL that tells the client to accept
      // its certificate (ic=3).
      assert.ok(typeof url === "string" && url.startsWith(`dclogin:${email}?`) && /[?&]ic=3(&|$)/.test(url),
        `dclogin_url ${JSON.stringify(url)}`);
      const dev = new Device(name);
      start = Date.now();
      await dev.configureFromQr(`New ${i + 1}`, url + dcloginServers(imap, smtp));
      record("8", `configure+idle ${name} (${imap}, ${smtp})`, Date.now() - start);
      assert.equal(dev.addr, email, `${name} configured another address`);
      return dev;
    }));
    assert.equal(new Set(news.map((d) => d.addr)).size, 3, "/new handed out one address twice");

    // The server made the accounts at their first login.
    if (env.COIBOX_BIN && env.COIBOX_CONFIG) {
      const list = execFileSync(env.COIBOX_BIN, ["--config", env.COIBOX_CONFIG, "account", "list"], { encoding: "utf8" });
      for (const d of news) {
        assert.match(list, new RegExp(`^${escapeRe(d.addr)}\\s`, "m"), `coibox account list lacks ${d.addr}:\n${list}`);
      }
    }

    // And they work: each sends to the next, encrypted, once it has the next one's key.
    await Promise.all(news.map(async (from, i) => {
      const to = news[(i + 1) % news.length];
      const id = await importCard(from, to);
      const chat = await from.rpc.createChatByContactId(from.acc, id);
      await exchange("8", from, chat, to);
    }));
  }, { skip: CHATMAIL ? false : "an ordinary domain has no /new" });

  scenario("9. port 443 only: dave's IMAP and SMTP both on the HTTPS port (ALPN), messages with alice", async () => {
    const { alice } = devices;
    const https = port("COIBOX_HTTPS_PORT");
    const dave = new Device("dave");
    const start = Date.now();
    await dave.configure("Dave", {
      addr: `dave@${DOMAIN}`,
      password: password("dave"),
      imapServer: HOST,
      imapPort: https,
      imapSecurity: "ssl",
      smtpServer: HOST,
      smtpPort: https,
      smtpSecurity: "ssl",
    });
    record("9", "configure+idle dave", Date.now() - start);
    const aliceOnDave = await importCard(dave, alice);
    const daveOnAlice = await importCard(alice, dave);
    const chatDA = await dave.rpc.createChatByContactId(dave.acc, aliceOnDave);
    await exchange("9", dave, chatDA, alice);
    const chatAD = await alice.rpc.createChatByContactId(alice.acc, daveOnAlice);
    await exchange("9", alice, chatAD, dave);
    // Every connection dave's core made went to the HTTPS port.
    const ports = connectedPorts(dave);
    assert.deepEqual([...ports.imap], [https], "dave's IMAP connections");
    assert.deepEqual([...ports.smtp], [https], "dave's SMTP connections");
  }, { skip: env.COIBOX_HTTPS_PORT ? false : "COIBOX_HTTPS_PORT is not set" });

  noWarnings("10. no warnings or errors in the client logs");
});
