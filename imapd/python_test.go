package imapd

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pythonSmoke drives the server with Python's imaplib, an independent client
// implementation with its own parser.
const pythonSmoke = `
import imaplib, sys
host, port = sys.argv[1], int(sys.argv[2])
M = imaplib.IMAP4(host, port)
typ, data = M.login("alice@example.org", "password123")
assert typ == "OK", data
typ, data = M.list()
assert typ == "OK" and len(data) == 6, data
assert any(b"\\Sent" in d for d in data), data
typ, data = M.select("INBOX")
assert typ == "OK" and data == [b"2"], data
typ, data = M.search(None, "SUBJECT", "second")
assert data == [b"2"], data
typ, data = M.fetch("1:2", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK", data
assert b"Subject: first" in data[0][1], data
typ, data = M.fetch("2", "(RFC822)")
assert b"Hello number 2." in data[0][1], data
typ, data = M.store("1", "+FLAGS", "(\\Deleted)")
assert typ == "OK", data
typ, data = M.append("Drafts", "(\\Draft)", None, b"Subject: py\r\n\r\nfrom python\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data
typ, data = M.copy("2", "Archive")
assert typ == "OK", data
typ, data = M.expunge()
assert data == [b"1"], data
typ, data = M.uid("SEARCH", "ALL")
assert data == [b"2"], data
typ, data = M.status("Drafts", "(MESSAGES UIDNEXT)")
assert b"MESSAGES 1" in data[0], data
typ, data = M.create("Py/Sub")
assert typ == "OK", data
typ, data = M.rename("Py", "Python")
assert typ == "OK", data
typ, data = M.getquotaroot("INBOX")
assert typ == "OK", data
typ, data = M.close()
assert typ == "OK", data
M.logout()
print("ok")
`

func TestPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; skipping the imaplib smoke test")
	}
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "first"))
	e.deliver(e.acc, "INBOX", testMessage(2, "second"))
	script := filepath.Join(t.TempDir(), "smoke.py")
	if err := os.WriteFile(script, []byte(pythonSmoke), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script, host, port).CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
}
