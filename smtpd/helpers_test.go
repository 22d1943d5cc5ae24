package smtpd_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/smtpd"
	"github.com/coibox/coibox/store"
)

const (
	alicePass = "alice-password"
	bobPass   = "bob-password"
)

// testServer is an smtpd.Server on a loopback port in front of a real store holding
// example.org with alice and bob.
type testServer struct {
	srv   *smtpd.Server
	st    *store.Store
	addr  string
	alice *store.Account
	bob   *store.Account
	done  chan error
}

func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.example.org"},
		DNSNames:     []string{"mx.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.org"} //nolint:gosec // a test certificate
}

// startServer runs a server of kind; tweak adjusts its options before it starts.
func startServer(t testing.TB, kind smtpd.Kind, tweak func(*smtpd.Options)) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{st: st, done: make(chan error, 1)}
	if ts.alice, err = st.AddAccount(ctx, "alice@example.org", alicePass); err != nil {
		t.Fatal(err)
	}
	if ts.bob, err = st.AddAccount(ctx, "bob@example.org", bobPass); err != nil {
		t.Fatal(err)
	}
	opts := smtpd.Options{
		Kind:        kind,
		Hostname:    "mx.example.org",
		TLSConfig:   serverTLS(t),
		Store:       st,
		AuthLimiter: authlimit.New(10, time.Minute).WithDelay(time.Millisecond, 5*time.Millisecond),
	}
	pipe := deliver.Options{Hostname: "mx.example.org"}
	if tweak != nil {
		tweak(&opts)
		pipe.MaxRecipients, pipe.MaxMessageBytes = opts.MaxRecipients, opts.MaxMessageBytes
		pipe.Metrics = opts.Metrics
	}
	opts.Pipeline = deliver.New(st, pipe)
	ts.srv = smtpd.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	go func() { ts.done <- ts.srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.srv.Shutdown(sctx)
	})
	return ts
}

// inbox returns the messages in an account's mailbox.
func (ts *testServer) mailbox(t testing.TB, acc *store.Account, name string) []store.Message {
	t.Helper()
	ctx := context.Background()
	mb, err := ts.st.Mailbox(ctx, acc.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	_, metas, err := ts.st.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	msgs, err := ts.st.Messages(ctx, mb.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func (ts *testServer) body(t testing.TB, m store.Message) string {
	t.Helper()
	b, err := ts.st.Body(context.Background(), m.BodyID)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// client speaks SMTP line by line for transcript tests.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func dialTLS(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func newClient(t testing.TB, conn net.Conn) *client {
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// run plays a transcript. Each line is one of:
//
//	C: text    the client sends text and CRLF
//	S: text    the server's next line is text; '*' matches any run of characters
//	TLS        the client starts TLS (after the server's 220 to STARTTLS)
//	CLOSED     the server has closed the connection
//	EHLO name  the client says EHLO; the server's 250 reply, whatever its lines
//
// Blank lines and lines starting with # are ignored. Leading tabs are trimmed, so a
// transcript can be indented with the test.
func (c *client) run(script string) {
	c.t.Helper()
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimLeft(line, "\t")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "C: "):
			c.send(line[3:] + "\r\n")
		case line == "C:":
			c.send("\r\n")
		case strings.HasPrefix(line, "S: "):
			c.expect(line[3:])
		case line == "TLS":
			tc := tls.Client(c.conn, clientTLS())
			if err := tc.Handshake(); err != nil {
				c.t.Fatalf("TLS handshake: %v", err)
			}
			c.conn, c.r = tc, bufio.NewReader(tc)
		case line == "CLOSED":
			c.expectClosed()
		case strings.HasPrefix(line, "EHLO "):
			c.send(line + "\r\n")
			for {
				l, err := c.readLine()
				if err != nil || !strings.HasPrefix(l, "250") {
					c.t.Fatalf("EHLO: got %q, %v", l, err)
				}
				if strings.HasPrefix(l, "250 ") {
					break
				}
			}
		default:
			c.t.Fatalf("bad transcript line %q", line)
		}
	}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("send %q: %v", raw, err)
	}
}

func (c *client) readLine() (string, error) {
	line, err := c.r.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func (c *client) expect(pattern string) {
	c.t.Helper()
	line, err := c.readLine()
	if err != nil {
		c.t.Fatalf("want %q, got error %v", pattern, err)
	}
	if !match(pattern, line) {
		c.t.Fatalf("want %q, got %q", pattern, line)
	}
}

func (c *client) expectClosed() {
	c.t.Helper()
	line, err := c.readLine()
	if err == nil {
		c.t.Fatalf("want the connection closed, got %q", line)
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

// match is a glob where '*' matches any run of characters.
func match(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return s == ""
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// expand replaces $NAME placeholders in a transcript.
func expand(script string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(script)
}
