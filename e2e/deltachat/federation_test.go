package deltachat

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

// The two hosts of TestDeltaChatFederation. Not the 127.0.0.2 and 127.0.0.3 of
// e2e/federation: `go test ./...` runs the two packages at the same time, and both
// need port 443 on their hosts.
const (
	ipA = "127.0.0.12"
	ipB = "127.0.0.13"
)

// chatHost is one coibox serving one chatmail domain on its own loopback address, as
// mx.<domain>, with a certificate from the test CA.
type chatHost struct {
	server
	domain, ip                                 string
	smtp, submission, submissions, imap, imaps string
	http, https, dataDir, certFile, keyFile    string
	dnsAddr                                    string
	smtpPort                                   int
}

// newChatHost configures a host for domain on ip in dir and publishes the records
// `coibox dns` prints for the domain in dns. It does not start the server.
func newChatHost(t *testing.T, dir, ip, domain string, ca *testutil.CA, dns *dnstest.Server, smtpPort int) *chatHost {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr := func(port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
	var p []int
	for p == nil || slices.Contains(p, smtpPort) {
		p = testutil.FreePortsOn(t, ip, 5)
	}
	h := &chatHost{
		domain: domain, ip: ip, dnsAddr: dns.Addr(), smtpPort: smtpPort,
		smtp: addr(smtpPort), submission: addr(p[0]), submissions: addr(p[1]), imap: addr(p[2]), imaps: addr(p[3]),
		http: addr(p[4]), https: addr(443), dataDir: filepath.Join(dir, "data"),
	}
	h.server = server{
		name: "mx." + domain, config: filepath.Join(dir, "coibox.toml"), logFile: filepath.Join(dir, "coibox.log"),
		waitFor: []string{h.smtp, h.submission, h.submissions, h.imap, h.imaps, h.https},
		health:  "http://" + h.http + "/healthz",
	}
	var err error
	h.certFile, h.keyFile, err = ca.Issue(dir, h.name, domain, "mta-sts."+domain, "autoconfig."+domain)
	if err != nil {
		t.Fatal(err)
	}
	h.writeConfig(t, true)
	// Admin commands refuse a data directory that does not exist.
	if err := os.MkdirAll(h.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	coibox(t, h.config, "", "domain", "add", "--chatmail", domain)
	coibox(t, h.config, "", "domain", "set", domain, "localpart_len=3..20", "resource_guard=off")
	n := 0
	for line := range strings.SplitSeq(coibox(t, h.config, "", "dns", domain), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		dns.Add(line)
		n++
	}
	if n < 10 {
		t.Fatalf("coibox dns %s printed only %d records", domain, n)
	}
	return h
}

// writeConfig writes the host's config; mxdelivInbound is chat.mxdeliv_inbound. The
// queue reaches the other host's SMTP on the port both listen on, from the host's own
// address (so that SPF passes), and retries within seconds.
func (h *chatHost) writeConfig(t *testing.T, mxdelivInbound bool) {
	t.Helper()
	writeFile(t, h.config, fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "debug"

%s
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

[chat]
turn_listen = ""
mxdeliv_inbound = %t
`, h.name, h.dataDir, testutil.Listeners{SMTP: h.smtp, Submission: h.submission, Submissions: h.submissions,
		IMAP: h.imap, IMAPS: h.imaps, HTTP: h.http, HTTPS: h.https}.TOML(),
		h.certFile, h.keyFile, h.dnsAddr, h.smtpPort, h.ip, mxdelivInbound))
}

// port is the port of one of the host's listen addresses.
func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// Log lines that tell how a message reached a host: over POST /mxdeliv, or over
// SMTP on port 25 (the MX listener).
var (
	viaMXDeliv = regexp.MustCompile(`msg="mxdeliv: delivered" .*from=(\S+)`)
	viaSMTP    = regexp.MustCompile(`msg="message accepted" .*listener=mx .*from=(\S+)`)
)

// senders lists the sender of every line of log that re matches.
func senders(re *regexp.Regexp, log string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1])
	}
	return out
}

// count is how many of list are want.
func count(list []string, want string) int {
	n := 0
	for _, s := range list {
		if s == want {
			n++
		}
	}
	return n
}

// TestDeltaChatFederation runs alice on chatmail host A and bob on chatmail host B,
// two coibox processes with their own stores, DKIM keys and certificates (from a test
// CA they trust through SSL_CERT_FILE) and the DNS records `coibox dns` prints, served
// by an in-process DNS server. Secure-Join, a message each way and a read receipt must
// travel between the hosts over HTTPS /mxdeliv (chatmail spec §13 #8, #19, #21; the
// receiving host's log says "mxdeliv: delivered" and nothing came over port 25); then B
// restarts with chat.mxdeliv_inbound off, and a message from alice still reaches bob,
// over SMTP (§11.2).
func TestDeltaChatFederation(t *testing.T) {
	node := needNode(t)
	for _, ip := range []string{ipA, ipB} {
		l, err := net.Listen("tcp", ip+":443")
		if err != nil {
			why := "another process holds it"
			if errors.Is(err, syscall.EACCES) {
				why = "not root, and no CAP_NET_BIND_SERVICE"
			} else if errors.Is(err, syscall.EADDRNOTAVAIL) {
				why = "this loopback address is not routed to lo"
			}
			t.Skipf("port 443 on %s cannot be bound (%s: %v): /mxdeliv between the hosts lives there", ip, why, err)
		}
		l.Close()
	}
	work := workDir(t)
	ca, err := testutil.NewCA("coibox deltachat test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(work, "ca.pem")
	writeFile(t, caFile, string(ca.PEM))
	// Inherited by the coibox processes: Go takes its trusted roots from here, so the
	// hosts verify each other's certificates (for /mxdeliv, STARTTLS and MTA-STS) as on
	// the Internet. The clients accept any certificate.
	t.Setenv("SSL_CERT_FILE", caFile)
	dns := dnstest.New(t)
	smtpPort := testutil.SharedPort(t, ipA, ipB)
	a := newChatHost(t, filepath.Join(work, "a"), ipA, "a.chat.test", ca, dns, smtpPort)
	b := newChatHost(t, filepath.Join(work, "b"), ipB, "b.chat.test", ca, dns, smtpPort)
	a.start(t)
	b.start(t)

	alice, bob := "alice@"+a.domain, "bob@"+b.domain
	env := []string{
		"COIBOX_A_HOST=" + a.ip,
		"COIBOX_A_DOMAIN=" + a.domain,
		"COIBOX_A_IMAPS_PORT=" + port(a.imaps),
		"COIBOX_A_SUBMISSIONS_PORT=" + port(a.submissions),
		"COIBOX_B_HOST=" + b.ip,
		"COIBOX_B_DOMAIN=" + b.domain,
		"COIBOX_B_IMAP_PORT=" + port(b.imap),
		"COIBOX_B_SUBMISSION_PORT=" + port(b.submission),
		"COIBOX_PASSWORD_ALICE=" + randomPassword(t),
		"COIBOX_PASSWORD_BOB=" + randomPassword(t),
		"DC_WORK_DIR=" + filepath.Join(work, "deltachat"),
	}

	runScenarios(t, node, "federation.test.mjs", append(env, "DC_PHASE=1"), &a.server, &b.server)
	// Every message arrived (the scenarios waited for each): it must have come over
	// /mxdeliv, and none over port 25.
	for _, c := range []struct {
		host *chatHost
		from string
	}{{b, alice}, {a, bob}} {
		out := c.host.proc.Output()
		if n := count(senders(viaMXDeliv, out), c.from); n == 0 {
			t.Errorf("%s took no message from %s over /mxdeliv\n%s", c.host.name, c.from, c.host.tail())
		}
		if s := senders(viaSMTP, out); len(s) > 0 {
			t.Errorf("%s took mail over port 25 (from %v) while /mxdeliv was on\n%s", c.host.name, s, c.host.tail())
		}
	}

	b.stop(t)
	b.writeConfig(t, false)
	b.start(t)
	runScenarios(t, node, "federation.test.mjs", append(env, "DC_PHASE=2"), &a.server, &b.server)
	out := b.proc.Output()
	if s := senders(viaMXDeliv, out); len(s) > 0 {
		t.Errorf("%s took mail over /mxdeliv (from %v) with chat.mxdeliv_inbound off\n%s", b.name, s, b.tail())
	}
	if n := count(senders(viaSMTP, out), alice); n == 0 {
		t.Errorf("%s took no message from %s over port 25 with /mxdeliv off\n%s", b.name, alice, b.tail())
	}

	a.stop(t)
	b.stop(t)
	a.verify(t)
	b.verify(t)
}
