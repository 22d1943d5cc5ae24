// Delta Chat core across two coibox hosts: alice on chatmail domain A, bob on chatmail
// domain B, each host a coibox process of its own (federation_test.go starts them, with
// DNS and certificates of a test CA, and reads their logs to tell which way each
// message went). The file runs twice against the same profiles:
//
// DC_PHASE=1  alice and bob configure (accounts by first login), Secure-Join across the
//             hosts (chatmail spec §13 #19), a 1:1 message each way (#8) and a read
//             receipt (#21). The hosts deliver to each other over HTTPS /mxdeliv.
// DC_PHASE=2  after B restarted with /mxdeliv turned off, alice and bob open their
//             profiles again and alice's next message still reaches bob: A falls back
//             to SMTP (§11.2).
//
// COIBOX_A_HOST, COIBOX_A_DOMAIN, COIBOX_A_IMAPS_PORT, COIBOX_A_SUBMISSIONS_PORT
//                         alice's server: its address, mail domain, IMAPS and SMTPS ports
// COIBOX_B_HOST, COIBOX_B_DOMAIN, COIBOX_B_IMAP_PORT, COIBOX_B_SUBMISSION_PORT
//                         bob's server: IMAP and submission with STARTTLS
// COIBOX_PASSWORD_ALICE, COIBOX_PASSWORD_BOB
//                         their passwords (the accounts appear at the first login)
//
// and those harness.mjs reads (DC_WORK_DIR, DC_ARRIVAL_TIMEOUT_MS, DC_RUST_LOG). The
// servers' certificates come from a CA the clients do not know, so the profiles accept
// invalid certificates.

import { describe, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { C } from "@deltachat/jsonrpc-client";
import {
  env, WORK, port, devices, Device, record, closeAll, scenario, noWarnings, sendText, secureJoin,
  exchange, unique,
} from "./harness.mjs";

const PHASE = env.DC_PHASE || "1";
// state carries what phase 1 learnt (chat ids) to phase 2.
const STATE = path.join(WORK, "federation-state.json");

function need(name) {
  assert.ok(env[name], `${name} is not set`);
  return env[name];
}

describe(`Delta Chat core across two coibox hosts, phase ${PHASE}`, () => {
  before(async () => {
    console.log(`work dir ${WORK}, A ${env.COIBOX_A_DOMAIN} on ${env.COIBOX_A_HOST}, B ${env.COIBOX_B_DOMAIN} on ${env.COIBOX_B_HOST}`);
    new Device("alice");
    new Device("bob");
    const info = await devices.alice.rpc.getSystemInfo();
    console.log(`deltachat core ${info.deltachat_core_version}`);
  });
  closeAll();

  if (PHASE === "1") {
    const ctx = {};

    scenario("1. alice on A and bob on B configure (accounts by first login)", async () => {
      const { alice, bob } = devices;
      const host = { A: need("COIBOX_A_HOST"), B: need("COIBOX_B_HOST") };
      await Promise.all([
        [alice, "Alice", {
          addr: `alice@${need("COIBOX_A_DOMAIN")}`, password: need("COIBOX_PASSWORD_ALICE"),
          imapServer: host.A, imapPort: port("COIBOX_A_IMAPS_PORT"), imapSecurity: "ssl",
          smtpServer: host.A, smtpPort: port("COIBOX_A_SUBMISSIONS_PORT"), smtpSecurity: "ssl",
        }],
        [bob, "Bob", {
          addr: `bob@${need("COIBOX_B_DOMAIN")}`, password: need("COIBOX_PASSWORD_BOB"),
          imapServer: host.B, imapPort: port("COIBOX_B_IMAP_PORT"), imapSecurity: "starttls",
          smtpServer: host.B, smtpPort: port("COIBOX_B_SUBMISSION_PORT"), smtpSecurity: "starttls",
        }],
      ].map(async ([dev, name, param]) => {
        const start = Date.now();
        await dev.configure(name, param);
        record("1", `configure+idle ${dev.name}`, Date.now() - start);
      }));
    }, { prerequisite: true });

    scenario("2. Secure-Join across the hosts: bob scans alice's QR code (§13 #19)", async () => {
      const { alice, bob } = devices;
      const sj = await secureJoin("2", alice, bob);
      ctx.bobOnAlice = sj.joinerOnInviter;
      ctx.aliceOnBob = sj.inviterOnJoiner;
    }, { prerequisite: true });

    scenario("3. 1:1 alice -> bob and bob -> alice across the hosts (§13 #8)", async () => {
      const { alice, bob } = devices;
      ctx.chatAB = await alice.rpc.createChatByContactId(alice.acc, ctx.bobOnAlice);
      const got = await exchange("3", alice, ctx.chatAB, bob);
      ctx.chatBA = got.msg.chatId;
      await bob.rpc.acceptChat(bob.acc, ctx.chatBA);
      const back = await exchange("3", bob, ctx.chatBA, alice);
      assert.equal(back.msg.chatId, ctx.chatAB, "bob's reply landed in another chat");
      fs.writeFileSync(STATE, JSON.stringify({ chatAB: ctx.chatAB, chatBA: ctx.chatBA }));
    }, { prerequisite: true });

    scenario("4. read receipt bob -> alice across the hosts (§13 #21)", async () => {
      const { alice, bob } = devices;
      const mb = bob.mark();
      const text = unique("please read");
      const sent = await sendText(alice, ctx.chatAB, text);
      const got = await bob.waitIncoming(text, mb);
      const ma = alice.mark();
      const seenAt = Date.now();
      await bob.rpc.markseenMsgs(bob.acc, [got.msg.id]);
      const ev = await alice.waitFor(`MsgRead for message ${sent.id}`,
        (e) => e.kind === "MsgRead" && e.msgId === sent.id, ma);
      record("4", "markseen -> MsgRead", ev.at - seenAt);
      const mine = await alice.rpc.getMessage(alice.acc, sent.id);
      assert.equal(mine.state, C.DC_STATE_OUT_MDN_RCVD, "alice's message is not marked read");
    });

    noWarnings("5. no warnings or errors in the client logs");
  } else {
    let state;

    scenario("1. alice and bob open their profiles again (B restarted without /mxdeliv)", async () => {
      state = JSON.parse(fs.readFileSync(STATE, "utf8"));
      await Promise.all([devices.alice, devices.bob].map(async (dev) => {
        const start = Date.now();
        await dev.open();
        record("1", `open+idle ${dev.name}`, Date.now() - start);
      }));
    }, { prerequisite: true });

    scenario("2. alice -> bob still arrives (A falls back to SMTP)", async () => {
      const { alice, bob } = devices;
      const got = await exchange("2", alice, state.chatAB, bob, " over SMTP");
      assert.equal(got.msg.chatId, state.chatBA, "the message landed in another chat of bob's");
    });

    noWarnings("3. no warnings or errors in the client logs");
  }
});
