// One Delta Chat core configures from the address and password alone: the server
// names, ports and security come from coibox's autoconfiguration (TestDeltaChatAutoconfig
// resolves the names to the test server and serves HTTPS on 443).
//
// Variables: COIBOX_DOMAIN, COIBOX_IMAPS_PORT and COIBOX_SUBMISSIONS_PORT (what the
// autoconfiguration must lead to), COIBOX_PASSWORD_ALICE, and those harness.mjs reads.

import { describe, before } from "node:test";
import assert from "node:assert/strict";
import { env, port, devices, Device, record, closeAll, scenario, noWarnings, connectedPorts } from "./harness.mjs";

describe("Delta Chat core configures from coibox's autoconfiguration", () => {
  before(() => {
    new Device("alice");
  });
  closeAll();

  scenario("1. alice configures from her address and password only", async () => {
    const dev = devices.alice;
    const start = Date.now();
    // No servers, ports or security: only what an ordinary user types. The test
    // server's certificate is self-signed, so invalid certificates are accepted
    // (for the autoconfiguration fetch too).
    await dev.configure("Alice", { addr: `alice@${env.COIBOX_DOMAIN}`, password: env.COIBOX_PASSWORD_ALICE });
    record("1", "configure from autoconfig", Date.now() - start);
    assert.equal(dev.addr, `alice@${env.COIBOX_DOMAIN}`);
    const ports = connectedPorts(dev);
    // The first entries of the answer: IMAPS and submission with implicit TLS.
    assert.deepEqual([...ports.imap], [port("COIBOX_IMAPS_PORT")], `IMAP connections: ${[...ports.imap]}`);
    assert.deepEqual([...ports.smtp], [port("COIBOX_SUBMISSIONS_PORT")], `SMTP connections: ${[...ports.smtp]}`);
    assert.ok(dev.log.some((l) => /autoconfig\./.test(l.line) || /config-v1\.1\.xml/.test(l.line)),
      "the core's log does not show the autoconfiguration fetch");
  }, { prerequisite: true });

  noWarnings("2. no warnings or errors in the client log");
});
