package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

// TestServeACME runs the server in tls.mode "acme" against Pebble, Let's Encrypt's
// test CA, on loopback: Pebble resolves mail.example.org through the in-process DNS
// server to 127.0.0.1 and validates the challenge on the server's own HTTP and HTTPS
// listeners. The issued certificate, with Pebble's root as the clients' only trust
// anchor, is then served on HTTPS, SMTP STARTTLS (with and without SNI), submission
// on 465 and IMAPS.
func TestServeACME(t *testing.T) {
	const host = "mail.example.org"
	dns := dnstest.New(t)
	dns.Add(host + ". 60 IN A 127.0.0.1")
	p := testutil.FreePorts(t, 7)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	listeners := testutil.Listeners{SMTP: addr(0), Submission: addr(1), Submissions: addr(2), IMAP: addr(3), IMAPS: addr(4), HTTP: addr(5), HTTPS: addr(6)}
	smtpAddr, subsAddr, imapsAddr, httpsAddr := listeners.SMTP, listeners.Submissions, listeners.IMAPS, listeners.HTTPS
	pebble := testutil.StartPebble(t, testutil.PebbleOptions{DNS: dns.Addr(), HTTPPort: p[5], TLSPort: p[6]})

	dir := t.TempDir()
	cfg := filepath.Join(dir, "coibox.toml")
	text := fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "debug"

%s
[tls]
mode = "acme"
acme_directory = %q
acme_ca_file = %q

[dns]
resolver = %q
`, host, filepath.Join(dir, "data"), listeners.TOML(), pebble.DirectoryURL, pebble.CAFile, dns.Addr())
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)

	roots, err := pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	verified := &tls.Config{ServerName: host, RootCAs: roots}
	// The server asks for its certificate at start; until it has it, handshakes
	// get the self-signed fallback, which these clients refuse.
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", httpsAddr, verified)
		if err == nil {
			c.Close()
			break
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) || time.Now().After(deadline) {
			t.Fatalf("HTTPS with Pebble's root: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.waitLog(t, regexp.MustCompile(`msg="obtained ACME certificate"`), 10*time.Second)

	t.Run("HTTPS healthz, no warning left", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: verified}, Timeout: 10 * time.Second}
		resp, err := hc.Get("https://" + httpsAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Errorf("healthz: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("SMTP STARTTLS with SNI", func(t *testing.T) {
		sc := dialSMTP(t, smtpAddr, nil)
		expect(t, "STARTTLS", 220)(sc.StartTLS(verified))
		expect(t, "EHLO after STARTTLS", 250)(sc.Hello("client.test"))
	})
	t.Run("SMTP STARTTLS without SNI", func(t *testing.T) {
		// Go's client sends no SNI when ServerName is empty; the chain and name are
		// then checked here, as a verifying MTA would.
		noSNI := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.ServerName != "" {
				return fmt.Errorf("sent SNI %q", cs.ServerName)
			}
			return verifyChain(cs, roots, host)
		}}
		sc := dialSMTP(t, smtpAddr, nil)
		expect(t, "STARTTLS", 220)(sc.StartTLS(noSNI))
	})
	t.Run("submissions on 465", func(t *testing.T) {
		sc, greet, err := testutil.DialSMTP(t.Context(), subsAddr, testutil.SMTPDialOptions{TLS: verified, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if greet.Code != 220 {
			t.Errorf("greeting %v", greet)
		}
	})
	t.Run("IMAPS", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", imapsAddr, verified)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "* OK " {
			t.Errorf("IMAPS greeting %q, %v", buf, err)
		}
	})
	t.Run("plain HTTP redirects to HTTPS", func(t *testing.T) {
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr(5)+"/new?x=1", nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := fmt.Sprintf("https://%s:%d/new?x=1", host, p[6]); resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("%d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
	t.Run("autoconfig over HTTPS", func(t *testing.T) {
		if r := coibox(t, "", "", "--config="+cfg, "domain", "add", "example.org"); r.code != 0 {
			t.Fatalf("domain add: %d %s", r.code, r.stderr)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: verified}, Timeout: 10 * time.Second}
		resp, err := hc.Get("https://" + httpsAddr + "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"<hostname>" + host + "</hostname>", fmt.Sprintf("<port>%d</port>", p[4]), fmt.Sprintf("<port>%d</port>", p[2])} {
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("%d, want %q in\n%s", resp.StatusCode, want, body)
			}
		}
	})
	if strings.Contains(srv.stderr.String(), "obtain ACME certificate failed") {
		t.Errorf("an attempt failed:\n%s", srv.stderr)
	}
}

// verifyChain checks the served chain against roots for name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool, name string) error {
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}
