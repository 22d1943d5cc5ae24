// The COI phase of TestDeltaChat: it runs after deltachat.test.mjs, on the same
// profiles, once the Go test has turned COI filing on for carol (`coibox account set
// carol@… coi_filing=on`, then SETMETADATA enabled yes and message-filter active).
// alice and carol open their profiles again and alice sends carol a chat message. The
// server files it into carol's COI/Chats (coi spec §7.2 `active`), which her core,
// watching INBOX only, never sees: that is why filing is opt-in (§1 D1, §7.3). This
// file does not wait for carol to receive it; it checks that her core received nothing
// (the core deletes from the server what it has downloaded, so the INBOX the Go test
// reads afterwards would not show a copy that had landed there), and hands the
// message's Message-ID to the Go test, which reads COI/Chats and INBOX over IMAP.
//
// Variables: those harness.mjs reads (DC_WORK_DIR must be the one deltachat.test.mjs
// used, DC_ARRIVAL_TIMEOUT_MS, DC_RUST_LOG). It writes DC_WORK_DIR/coi-state.json:
// {"chatMessageId": "<Message-ID of alice's message, without angle brackets>"}.

import { describe, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { WORK, sleep, devices, Device, record, closeAll, scenario, noWarnings, sendText, unique } from "./harness.mjs";

// IN: what deltachat.test.mjs left (carol's contact id on alice); OUT: what the Go
// test reads.
const IN = path.join(WORK, "deltachat-state.json");
const OUT = path.join(WORK, "coi-state.json");
// SETTLE is how long carol's core is watched after alice's message was accepted: the
// server delivers before its 250, so a copy in INBOX would reach carol's IDLE at once.
const SETTLE_MS = 500;

describe("Delta Chat core with COI filing on for carol", () => {
  let state;

  before(async () => {
    console.log(`work dir ${WORK}`);
    new Device("alice");
    new Device("carol");
  });
  closeAll();

  scenario("1. alice and carol open their profiles again", async () => {
    state = JSON.parse(fs.readFileSync(IN, "utf8"));
    await Promise.all([devices.alice, devices.carol].map(async (dev) => {
      const start = Date.now();
      await dev.open();
      record("1", `open+idle ${dev.name}`, Date.now() - start);
    }));
  }, { prerequisite: true });

  scenario("2. alice -> carol: accepted by the server, filed away from carol's INBOX", async () => {
    const { alice, carol } = devices;
    const chat = await alice.rpc.createChatByContactId(alice.acc, state.carolOnAlice);
    const [ma, mc] = [alice.mark(), carol.mark()];
    const text = unique("alice to carol, for COI/Chats");
    const sent = await sendText(alice, chat, text);
    const ev = await alice.waitFor(`MsgDelivered for message ${sent.id}`,
      (e) => e.kind === "MsgDelivered" && e.msgId === sent.id, ma);
    record("2", "alice -> server (MsgDelivered)", ev.at - sent.at);
    const msg = await alice.rpc.getMessage(alice.acc, sent.id);
    assert.equal(msg.showPadlock, true, "alice's message to carol is not encrypted");
    const info = await alice.rpc.getMessageInfoObject(alice.acc, sent.id);
    assert.ok(info.rfc724Mid, "alice's message has no Message-ID");
    fs.writeFileSync(OUT, JSON.stringify({ chatMessageId: info.rfc724Mid.replace(/^<|>$/g, "") }));

    // D1: carol's core watches INBOX and does not hear of the filed message.
    await sleep(SETTLE_MS);
    const got = carol.events.slice(mc).filter((e) => e.kind === "IncomingMsg");
    assert.deepEqual(got, [], "carol's core received a message that should be in COI/Chats");
  });

  noWarnings("3. no warnings or errors in the client logs");
});
