package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/store"
)

// coiboxBin is the binary TestMain builds once for the whole suite.
var coiboxBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.MainWithBinary(m, "github.com/coibox/coibox/cmd/coibox", &coiboxBin))
}

// domain is the mail domain every test server serves.
const domain = "e2e.test"

// stopGrace is how long a server may take to exit after SIGTERM. The server's own
// grace for running transactions is 10s; this leaves room for a loaded machine.
const stopGrace = 20 * time.Second

// server is one coibox process under test with its config, data and accounts. The
// config and data outlive the process, so a test can restart it on the same store.
type server struct {
	config  string
	dataDir string
	addr    testutil.Listeners
	https   string // the HTTPS listener, when options.https
	proc    *testutil.ServerProc
	// passwords by account address.
	passwords map[string]string
}

// options shape a test server.
type options struct {
	// users are the local parts of the accounts created on domain.
	users []string
	// limits holds lines for the [limits] table, e.g. `recipients = 5`.
	limits string
	// chatmail, if set, is a chatmail domain served too (accounts on first login),
	// with the `domain set` arguments in chatSettings.
	chatmail     string
	chatSettings []string
	// config is more TOML appended to the config file, e.g. a [chat] table.
	config string
	// https also serves HTTPS (and, through ALPN, IMAP and submission) on a free
	// port, kept in server.https.
	https bool
}

// startServer writes a config (every listener on a free 127.0.0.1 port, a self-signed
// certificate, DNS answered by an in-process server that knows no names, so checks of
// remote domains are fast and offline), creates the domain and the accounts with the
// admin subcommands, and starts `coibox serve`. The server is stopped when the test ends;
// the test fails if it then does not exit cleanly.
func startServer(t *testing.T, o options) *server {
	t.Helper()
	dns := dnstest.New(t)
	extra := fmt.Sprintf("\n[dns]\nresolver = %q\n", dns.Addr())
	if o.limits != "" {
		extra += "\n[limits]\n" + o.limits + "\n"
	}
	extra += o.config
	path, dataDir, addrs := testutil.ServerConfig(t, extra)
	s := &server{config: path, dataDir: dataDir, addr: addrs, passwords: map[string]string{}}
	if o.https {
		s.https = fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text = bytes.Replace(text, []byte(`https = ""`), []byte(fmt.Sprintf("https = %q", s.https)), 1)
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.mustAdmin(t, "", "domain", "add", domain)
	if o.chatmail != "" {
		s.mustAdmin(t, "", "domain", "add", "--chatmail", o.chatmail)
		if len(o.chatSettings) > 0 {
			s.mustAdmin(t, "", append([]string{"domain", "set", o.chatmail}, o.chatSettings...)...)
		}
	}
	for _, u := range o.users {
		addr := u + "@" + domain
		pw := "secret-" + u + "-e2e"
		s.mustAdmin(t, pw+"\n", "account", "add", addr)
		s.passwords[addr] = pw
	}
	s.start(t)
	t.Cleanup(func() {
		if s.proc == nil {
			return
		}
		select {
		case <-s.proc.Done():
			return // the test ended it on purpose
		default:
		}
		code, err := s.proc.Stop(stopGrace)
		if err != nil || code != 0 {
			t.Errorf("server at test end: exit code %d, %v", code, err)
		}
		if t.Failed() {
			t.Logf("server output (tail):\n%s", testutil.Tail(s.proc.Output(), 80))
		}
	})
	return s
}

// start runs the server on the existing config and data and waits until its SMTP
// listeners accept connections.
func (s *server) start(t *testing.T) {
	t.Helper()
	p, err := testutil.StartServerProc(t.Context(), coiboxBin, s.config,
		[]string{s.addr.SMTP, s.addr.Submission, s.addr.Submissions}, 20*time.Second, nil)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	s.proc = p
	if err := p.WaitHealthy(t.Context(), "http://"+s.addr.HTTP+"/healthz", 20*time.Second); err != nil {
		t.Fatalf("start server: %v", err)
	}
}

// kill ends the server with SIGKILL.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.proc.Kill(); err != nil {
		t.Fatalf("kill server: %v", err)
	}
}

// result is what one run of an admin subcommand produced.
type result = testutil.Result

// admin runs `coibox --config <config> args...` with stdin.
func (s *server) admin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return testutil.Run(t, coiboxBin, stdin, append([]string{"--config", s.config}, args...)...)
}

// mustAdmin runs an admin subcommand and fails the test unless it exits 0.
func (s *server) mustAdmin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := s.admin(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("coibox %s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// verify runs `coibox verify` and fails the test unless the store is consistent.
func (s *server) verify(t *testing.T) {
	t.Helper()
	r := s.mustAdmin(t, "", "verify")
	if !strings.Contains(r.Stdout, "consistent") {
		t.Errorf("coibox verify printed %q, want a consistent store", r.Stdout)
	}
}

// clientTLS is the TLS config of every test client: the server's certificate is
// self-signed and made at its first start, so there is nothing to verify it against.
func clientTLS() *tls.Config {
	return &tls.Config{ServerName: "localhost", InsecureSkipVerify: true} //nolint:gosec // self-signed test server
}

// stored is a message as the store holds it.
type stored struct {
	uid    uint32
	header mail.Header
	body   []byte
}

// inbox reads every message in an account's INBOX straight from the store. Opening the
// store beside a running server is safe: SQLite's WAL lets readers work while the
// server writes, and nothing here writes.
func (s *server) inbox(t *testing.T, address string) []stored {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, s.dataDir, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	acct, err := st.Account(ctx, address)
	if err != nil {
		t.Fatalf("account %s: %v", address, err)
	}
	mb, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if errors.Is(err, store.ErrNotFound) {
		return nil // created at the first delivery
	}
	if err != nil {
		t.Fatalf("INBOX of %s: %v", address, err)
	}
	_, metas, err := st.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatalf("read INBOX of %s: %v", address, err)
	}
	uids := make([]uint32, len(metas))
	for i, m := range metas {
		uids[i] = m.UID
	}
	msgs, err := st.Messages(ctx, mb.ID, uids)
	if err != nil {
		t.Fatalf("read INBOX of %s: %v", address, err)
	}
	out := make([]stored, 0, len(msgs))
	for _, m := range msgs {
		body, err := st.Body(ctx, m.BodyID)
		if err != nil {
			t.Fatalf("read body of UID %d: %v", m.UID, err)
		}
		pm, err := mail.ReadMessage(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("stored message UID %d does not parse: %v\n%s", m.UID, err, body)
		}
		out = append(out, stored{uid: m.UID, header: pm.Header, body: body})
	}
	return out
}

// countByMessageID counts the stored messages by their Message-ID field.
func countByMessageID(msgs []stored) map[string]int {
	n := make(map[string]int, len(msgs))
	for _, m := range msgs {
		n[m.header.Get("Message-Id")]++
	}
	return n
}

// newMessage returns a small message with the given Message-ID (without brackets) and
// about size bytes of body.
func newMessage(from, to, msgID string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: e2e %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n\r\n",
		from, to, msgID, time.Now().Format(time.RFC1123Z), msgID)
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// ackLog records which Message-IDs the server acknowledged with 250 after DATA, from
// many goroutines.
type ackLog struct {
	mu    sync.Mutex
	acked map[string]bool
}

func (a *ackLog) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acked == nil {
		a.acked = map[string]bool{}
	}
	a.acked[id] = true
}

func (a *ackLog) n() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *ackLog) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.acked))
	for id := range a.acked {
		out = append(out, id)
	}
	return out
}

// imapFetch logs in over IMAPS as address, searches INBOX for a Message-ID (with its
// angle brackets) and returns the full text of every match: the path a mail client
// takes, from the other side of the store.
func (s *server) imapFetch(t *testing.T, address, msgID string) [][]byte {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatalf("IMAP connect: %v", err)
	}
	defer c.Close()
	if err := c.Login(address, s.passwords[address]).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN %s: %v", address, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("IMAP SELECT INBOX: %v", err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-Id", Value: msgID}},
	}, nil).Wait()
	if err != nil {
		t.Fatalf("IMAP SEARCH: %v", err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("IMAP FETCH: %v", err)
	}
	var out [][]byte
	for _, m := range msgs {
		for _, sec := range m.BodySection {
			out = append(out, sec.Bytes)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("IMAP LOGOUT: %v", err)
	}
	return out
}
