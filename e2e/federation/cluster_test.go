package federation

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// coiboxBin is the binary TestMain builds; ca issues every peer's certificate and is
// what the coibox processes trust (SSL_CERT_FILE), so that MTA-STS and certificate
// checks between peers behave as between servers with public certificates.
var (
	coiboxBin string
	ca        *testutil.CA
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		if ca, err = testutil.NewCA("coibox federation test CA"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "coibox-federation-ca")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		caFile := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Inherited by every coibox process: Go takes its trusted roots from here,
		// so the peers verify each other's certificates as on the Internet.
		os.Setenv("SSL_CERT_FILE", caFile)
		return testutil.MainWithBinary(m, "github.com/coibox/coibox/cmd/coibox", &coiboxBin)
	}())
}

// Addresses of the peers. 127.0.0.4 sends forgeries; 127.0.0.5 is Postfix.
const (
	ipA       = "127.0.0.2"
	ipB       = "127.0.0.3"
	ipForger  = "127.0.0.4"
	ipPostfix = "127.0.0.5"
)

// stopGrace is how long a peer may take to exit after SIGTERM.
const stopGrace = 20 * time.Second

// cluster is the shared world of a test: DNS, the SMTP port every peer listens on (so
// that [queue] remote_port reaches them all) and whether HTTPS could get port 443,
// where MTA-STS policies are fetched.
type cluster struct {
	dns      *dnstest.Server
	smtpPort int
	https    bool
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if l, err := net.Listen("tcp", ipB+":0"); err != nil {
		t.Skipf("loopback address %s unusable here (Linux routes all of 127/8 to lo): %v", ipB, err)
	} else {
		l.Close()
	}
	c := &cluster{dns: dnstest.New(t), smtpPort: testutil.SharedPort(t, ipA, ipB, ipPostfix)}
	// MTA-STS policies are fetched from port 443 and nowhere else (RFC 8461 3.3).
	c.https = true
	for _, ip := range []string{ipA, ipB} {
		l, err := net.Listen("tcp", ip+":443")
		if err != nil {
			if !errors.Is(err, syscall.EACCES) {
				t.Logf("port 443 on %s: %v", ip, err)
			}
			c.https = false
			break
		}
		l.Close()
	}
	if !c.https {
		t.Logf("port 443 cannot be bound (not root?): MTA-STS policies are not served, their tests are skipped")
	}
	return c
}

// peer is one coibox process serving domain as host on ip.
type peer struct {
	c                             *cluster
	domain, host, ip              string
	config, dataDir               string
	smtp, submission, imap, httpd string
	proc                          *testutil.ServerProc
	passwords                     map[string]string
}

// newPeer configures a coibox on ip for domain with host name "mx.<domain>", a
// certificate from the test CA for certNames besides the host, and the given users;
// it creates the domain and the accounts and publishes the domain's records (as
// `coibox dns` prints them) in the cluster's DNS. It does not start the server.
func newPeer(t *testing.T, c *cluster, ip, domain string, users []string, certNames ...string) *peer {
	t.Helper()
	dir := t.TempDir()
	p := &peer{
		c: c, domain: domain, host: "mx." + domain, ip: ip,
		config: filepath.Join(dir, "coibox.toml"), dataDir: filepath.Join(dir, "data"),
		passwords: map[string]string{},
	}
	addr := func(port int) string { return fmt.Sprintf("%s:%d", ip, port) }
	p.smtp = addr(c.smtpPort)
	ports := testutil.FreePortsOn(t, ip, 3)
	p.submission, p.imap, p.httpd = addr(ports[0]), addr(ports[1]), addr(ports[2])
	https := ""
	if c.https {
		https = addr(443)
	}
	certFile, keyFile, err := ca.Issue(dir, append([]string{p.host, "mta-sts." + domain, "autoconfig." + domain}, certNames...)...)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "debug"

[listen]
smtp = %q
submission = %q
submissions = ""
imap = %q
imaps = ""
http = %q
https = %q

[tls]
mode = "files"
cert_file = %q
key_file = %q

[dns]
resolver = %q

[queue]
remote_port = %d
source_ip = %q
min_retry = "1s"
max_retry = "2s"
`, p.host, p.dataDir, p.smtp, p.submission, p.imap, p.httpd, https, certFile, keyFile, c.dns.Addr(), c.smtpPort, ip)
	if err := os.WriteFile(p.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Admin commands refuse a data directory that does not exist.
	if err := os.MkdirAll(p.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	p.mustAdmin(t, "", "domain", "add", domain)
	for _, u := range users {
		a := u + "@" + domain
		p.passwords[a] = "secret-" + u + "-federation"
		p.mustAdmin(t, p.passwords[a]+"\n", "account", "add", a)
	}
	p.publish(t, domain)
	return p
}

// publish adds the records `coibox dns DOMAIN` prints to the cluster's DNS: the test
// thereby also checks that they are complete and valid.
func (p *peer) publish(t *testing.T, domain string) {
	t.Helper()
	out := p.mustAdmin(t, "", "dns", domain).Stdout
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		p.c.dns.Add(line)
		n++
	}
	if n < 10 {
		t.Fatalf("coibox dns %s printed only %d records:\n%s", domain, n, out)
	}
}

// start runs the server and waits until it is healthy; it is stopped at the test's end.
func (p *peer) start(t *testing.T) {
	t.Helper()
	proc, err := testutil.StartServerProc(t.Context(), coiboxBin, p.config, []string{p.smtp, p.submission, p.imap}, 20*time.Second, nil)
	if err != nil {
		t.Fatalf("start %s: %v", p.host, err)
	}
	p.proc = proc
	if err := proc.WaitHealthy(t.Context(), "http://"+p.httpd+"/healthz", 20*time.Second); err != nil {
		t.Fatalf("start %s: %v", p.host, err)
	}
	t.Cleanup(func() {
		select {
		case <-proc.Done(): // the test stopped it
		default:
			if code, err := proc.Stop(stopGrace); err != nil || code != 0 {
				t.Errorf("%s at test end: exit code %d, %v", p.host, code, err)
			}
		}
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", p.host, testutil.Tail(proc.Output(), 60))
		}
	})
}

// stop ends the server with SIGTERM and waits for it.
func (p *peer) stop(t *testing.T) {
	t.Helper()
	if code, err := p.proc.Stop(stopGrace); err != nil || code != 0 {
		t.Fatalf("stop %s: exit code %d, %v\n%s", p.host, code, err, testutil.Tail(p.proc.Output(), 40))
	}
}

// result is what one run of an admin subcommand produced.
type result = testutil.Result

// admin runs `coibox --config <config> args...`.
func (p *peer) admin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return testutil.Run(t, coiboxBin, stdin, append([]string{"--config", p.config}, args...)...)
}

func (p *peer) mustAdmin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := p.admin(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("%s: coibox %s: exit code %d\nstdout: %s\nstderr: %s", p.host, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// clientTLS verifies the peer's certificate as a mail client would.
func (p *peer) clientTLS() *tls.Config {
	return &tls.Config{ServerName: p.host, RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
}

// submit sends msg from the account from through submission: STARTTLS, AUTH, then
// the transaction. It returns the reply to the message (or the first refusal).
func (p *peer) submit(t *testing.T, from string, to []string, msg []byte) testutil.SMTPReply {
	t.Helper()
	c, greet, err := testutil.DialSMTP(t.Context(), p.submission, testutil.SMTPDialOptions{Timeout: 20 * time.Second})
	if err != nil || greet.Code != 220 {
		t.Fatalf("connect to submission of %s: %v %v", p.host, greet, err)
	}
	defer c.Close()
	for _, step := range []func() (testutil.SMTPReply, error){
		func() (testutil.SMTPReply, error) { return c.Hello("client.test") },
		func() (testutil.SMTPReply, error) { return c.StartTLS(p.clientTLS()) },
		func() (testutil.SMTPReply, error) { return c.Hello("client.test") },
		func() (testutil.SMTPReply, error) { return c.AuthPlain(from, p.passwords[from]) },
	} {
		if r, err := step(); err != nil || r.Code/100 != 2 {
			t.Fatalf("submission to %s: %v %v", p.host, r, err)
		}
	}
	r, err := c.Send(from, to, msg)
	if err != nil {
		t.Fatalf("submission to %s: %v", p.host, err)
	}
	_ = c.Quit()
	return r
}

// inbox fetches every message in user's INBOX over IMAP (STARTTLS, LOGIN), as a
// mail client reads it.
func (p *peer) inbox(t *testing.T, user string) [][]byte {
	t.Helper()
	c, err := imapclient.DialStartTLS(p.imap, &imapclient.Options{TLSConfig: p.clientTLS()})
	if err != nil {
		t.Fatalf("IMAP to %s: %v", p.host, err)
	}
	defer c.Close()
	if err := c.Login(user, p.passwords[user]).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN %s at %s: %v", user, p.host, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages == 0 {
		return nil // no INBOX before the first delivery
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	whole := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
	if err != nil {
		t.Fatalf("IMAP FETCH at %s: %v", p.host, err)
	}
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.FindBodySection(whole))
	}
	_ = c.Logout().Wait()
	return out
}

// waitFor polls user's INBOX until a message satisfies match and returns it.
func (p *peer) waitFor(t *testing.T, user string, timeout time.Duration, what string, match func(*mail.Message, []byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, raw := range p.inbox(t, user) {
			if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil && match(m, raw) {
				return raw
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s in the INBOX of %s after %v", p.host, what, user, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// byMessageID matches a message by its Message-ID (without brackets).
func byMessageID(id string) func(*mail.Message, []byte) bool {
	return func(m *mail.Message, _ []byte) bool { return m.Header.Get("Message-Id") == "<"+id+">" }
}

// countMessageID counts the messages in user's INBOX with Message-ID id.
func (p *peer) countMessageID(t *testing.T, user, id string) int {
	t.Helper()
	n := 0
	for _, raw := range p.inbox(t, user) {
		if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil && byMessageID(id)(m, raw) {
			n++
		}
	}
	return n
}

// queueID returns the id `coibox queue list` shows for rcpt, or 0 if rcpt is not queued.
func (p *peer) queueID(t *testing.T, rcpt string) (id string, line string) {
	t.Helper()
	out := p.mustAdmin(t, "", "queue", "list").Stdout
	re := regexp.MustCompile(`(?m)^(\d+) .* ` + regexp.QuoteMeta(rcpt) + ` .*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return "", ""
	}
	return m[1], m[0]
}

// message writes a small message with the given Message-ID (without brackets).
func message(from, to, subject, id string) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n\r\n%s\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), id, "Sent across the federation test.")
}
