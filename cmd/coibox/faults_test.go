package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns it. It
// needs root; with COIBOX_ROOT_TESTS=1 (CI, which runs as root) a failure to mount
// fails the test instead of skipping it.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("COIBOX_ROOT_TESTS") == "1" {
			t.Fatalf("mount a tmpfs: %v %s", err, out)
		}
		t.Skipf("mounting a tmpfs needs root (CI runs this as root with COIBOX_ROOT_TESTS=1): %v %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// freeBytes is what an unprivileged writer may still put on the file system of dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestDiskFull: the data directory's disk fills up during SMTP ingest and IMAP
// APPEND. SMTP answers 452 4.3.1 and APPEND NO [OVERQUOTA], never an internal error;
// the server keeps serving; when space returns both work again; every message that
// was acknowledged can be fetched, and verify finds the store consistent.
func TestDiskFull(t *testing.T) {
	data := mountTmpfs(t, 24<<20)
	cfgOrig, _, l := testutil.ServerConfig(t, "")
	cfg := withDataDir(t, cfgOrig, data)
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "example.org", c}},
		{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "alice password\n"},
	})
	srv := startServer(t, cfg)

	// Ballast leaves about 2 MiB; the messages below are 64 KiB each.
	ballast := filepath.Join(data, "ballast")
	if err := os.WriteFile(ballast, make([]byte, freeBytes(t, data)-2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	body := func(id string) []byte {
		return []byte("From: <bob@example.net>\r\nTo: <alice@example.org>\r\nSubject: " + id + "\r\nMessage-ID: <" + id +
			"@example.net>\r\nDate: Mon, 02 Jan 2026 15:04:05 +0000\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 1024))
	}
	mx := dialSMTP(t, l.SMTP, nil)
	expect(t, "EHLO", 250)(mx.Hello("mx.example.net"))
	var accepted []string
	full := false
	for i := 0; i < 200 && !full; i++ {
		id := fmt.Sprintf("fill-%03d", i)
		r, err := mx.Send("bob@example.net", []string{"alice@example.org"}, body(id))
		switch {
		case err != nil:
			t.Fatalf("message %d: %v", i, err)
		case r.Code == 250:
			accepted = append(accepted, id)
		case r.Code == 452 && len(r.Lines) > 0 && strings.HasPrefix(r.Lines[0], "4.3.1 "):
			full = true
		default:
			t.Fatalf("message %d on a filling disk: %v, want 250 or 452 4.3.1", i, r)
		}
	}
	if !full {
		t.Fatalf("no 452 after %d messages of 64 KiB on a disk with 2 MiB free", len(accepted))
	}
	t.Logf("%d messages accepted, then 452 4.3.1", len(accepted))
	if len(accepted) == 0 {
		t.Fatal("the first message was refused: the ballast left no room at all")
	}

	ic, err := imapclient.DialTLS(l.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice@example.org", "alice password").Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg := func(id string) error {
		b := body(id)
		a := ic.Append("INBOX", int64(len(b)), nil)
		if _, err := a.Write(b); err != nil {
			return err
		}
		if err := a.Close(); err != nil {
			return err
		}
		_, err := a.Wait()
		return err
	}
	if err := appendMsg("append-full"); err == nil || !strings.Contains(err.Error(), "OVERQUOTA") {
		t.Fatalf("APPEND on a full disk: %v, want NO [OVERQUOTA]", err)
	}
	if err := ic.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after the refused APPEND: %v", err)
	}

	// Space returns: both work again, on the same connections.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	r, err := mx.Send("bob@example.net", []string{"alice@example.org"}, body("after-space"))
	if err != nil || r.Code != 250 {
		t.Fatalf("SMTP once space returned: %v %v", r, err)
	}
	accepted = append(accepted, "after-space")
	if err := appendMsg("append-after"); err != nil {
		t.Fatalf("APPEND once space returned: %v", err)
	}
	accepted = append(accepted, "append-after")
	_ = mx.Quit()

	// Every acknowledged message is there, once.
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if int(sel.NumMessages) != len(accepted) {
		t.Errorf("INBOX holds %d messages, %d were acknowledged", sel.NumMessages, len(accepted))
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := ic.Fetch(all, &imap.FetchOptions{Envelope: true, RFC822Size: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, m := range msgs {
		have[m.Envelope.Subject] = true
		if want := int64(len(body(m.Envelope.Subject))); m.RFC822Size < want {
			t.Errorf("message %s has %d bytes, was sent with %d", m.Envelope.Subject, m.RFC822Size, want)
		}
	}
	for _, id := range accepted {
		if !have[id] {
			t.Errorf("acknowledged message %s is missing", id)
		}
	}
	if err := ic.Logout().Wait(); err != nil {
		t.Error(err)
	}
	srv.stop(t, syscall.SIGTERM)
	if !strings.Contains(srv.stderr.String(), "storage full") {
		t.Errorf("the server did not log the full disk:\n%s", srv.stderr)
	}
	runSteps(t, "", []step{{name: "verify after the full disk", args: []string{"verify", c}, wantStdout: []string{"store is consistent"}}})
}
