package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

var coiboxBin string

func TestMain(m *testing.M) { os.Exit(testutil.MainWithBinary(m, "../../cmd/coibox", &coiboxBin)) }

// nginxBinary is Debian's nginx. The package starts a system-wide nginx when it is
// installed; this test runs its own, on its own ports.
func nginxBinary(t *testing.T) string { return testutil.DebianTool(t, "nginx", "nginx") }

// startNginx runs nginx with the given server blocks until the test ends.
func startNginx(t *testing.T, servers string) {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	%[2]s
}
`, dir, servers)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx:\n%s\n%s", out.String(), testutil.Tail(string(log), 30))
		}
	})
	// Ready once its pid file is written (after it has bound every port).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "nginx.pid")); err == nil {
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s\n%s", out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not start")
		}
	}
}

// proxyServers are nginx's two server blocks of the documented setup: HTTPS on
// httpsAddr with its own certificate, passing everything to coibox's HTTP listener,
// and plain HTTP on httpAddr passing ACME challenges on and redirecting the rest.
func proxyServers(httpAddr, httpsAddr, coibox, certFile, keyFile string) string {
	return fmt.Sprintf(`
	server {
		listen %[2]s ssl;
		ssl_certificate %[4]s;
		ssl_certificate_key %[5]s;
		location / {
			proxy_pass http://%[3]s;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
		}
	}
	server {
		listen %[1]s;
		location /.well-known/acme-challenge/ {
			proxy_pass http://%[3]s;
			proxy_set_header Host $host;
		}
		location / { return 301 https://$host$request_uri; }
	}`, httpAddr, httpsAddr, coibox, certFile, keyFile)
}

type host struct {
	config string
	proc   *testutil.ServerProc
}

func (h *host) admin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := testutil.Run(t, coiboxBin, stdin, append([]string{"--config", h.config}, args...)...)
	if r.Code != 0 {
		t.Fatalf("coibox %v: %d %s %s", args, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// clientFrom is an HTTPS client that connects from the loopback address local and
// sends every request to addr, whatever the URL's host, trusting roots.
func clientFrom(local, addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// TestBehindNginx: with nginx on the web ports and coibox's HTTP listener behind it
// (listen.https off, listen.trusted_proxies naming nginx), /new, autoconfig and
// MTA-STS work through the proxy; /new counts clients by the address nginx saw, not
// by nginx's; a client talking to coibox directly cannot forge that address; plain
// HTTP at nginx redirects to HTTPS.
func TestBehindNginx(t *testing.T) {
	const chat, mail = "chat.example", "example.org"
	dns := dnstest.New(t)
	ca, err := testutil.NewCA("nginx test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(t.TempDir(), chat, "autoconfig."+mail, "mta-sts."+mail)
	if err != nil {
		t.Fatal(err)
	}
	ports := testutil.FreePorts(t, 2)
	nginxHTTP, nginxHTTPS := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	cfg, _, l := testutil.ServerConfig(t, fmt.Sprintf(`
[dns]
resolver = %q

[chat]
turn_listen = ""
`, dns.Addr()))
	// listen.trusted_proxies is a key of [listen], which ServerConfig wrote.
	text, _ := os.ReadFile(cfg)
	text = bytes.Replace(text, []byte("https = \"\"\n"), []byte("https = \"\"\ntrusted_proxies = [\"127.0.0.1\"]\n"), 1)
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	h := &host{config: cfg}
	h.admin(t, "", "domain", "add", mail)
	h.admin(t, "", "domain", "add", "--chatmail", chat)
	h.admin(t, "", "domain", "set", chat, "resource_guard=off")
	h.proc, err = testutil.StartServerProc(t.Context(), coiboxBin, cfg, []string{l.HTTP, l.SMTP}, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = h.proc.Stop(10 * time.Second) })
	startNginx(t, proxyServers(nginxHTTP, nginxHTTPS, l.HTTP, certFile, keyFile))

	newAccount := func(c *http.Client, url string, header http.Header) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url, nil)
		req.Host = chat
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == 200 {
			var creds map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&creds); err != nil || !strings.HasSuffix(creds["email"], "@"+chat) {
				t.Errorf("credentials %v %v", creds, err)
			}
		}
		return resp.StatusCode
	}
	viaNginx := func(local string) *http.Client { return clientFrom(local, nginxHTTPS, ca.Pool) }
	// /new allows a burst of 5 per client network (/24), then 2 a second.
	const burst = 5
	for i := range burst {
		if code := newAccount(viaNginx(fmt.Sprintf("127.0.0.%d", 10+i)), "https://"+chat+"/new", nil); code != 200 {
			t.Fatalf("/new %d from 127.0.0.0/24 through nginx: %d", i+1, code)
		}
	}
	if code := newAccount(viaNginx("127.0.0.20"), "https://"+chat+"/new", nil); code != 429 {
		t.Errorf("/new %d from 127.0.0.0/24 through nginx: %d, want 429", burst+1, code)
	}
	// nginx itself is in 127.0.0.0/24: only if coibox counts the address nginx names
	// does a client of another network get through now.
	if code := newAccount(viaNginx("127.0.1.5"), "https://"+chat+"/new", nil); code != 200 {
		t.Errorf("/new from 127.0.1.5 through nginx: %d, want 200", code)
	}
	// Directly, from an address that is not a trusted proxy, forged headers naming a
	// fresh network each time are ignored: this client's own network is counted.
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.2.9")}}).DialContext}}
	for i := range burst + 1 {
		forged := http.Header{"X-Forwarded-For": {fmt.Sprintf("127.0.%d.1", 100+i)}, "X-Forwarded-Proto": {"https"}}
		want := 200
		if i == burst {
			want = 429
		}
		if code := newAccount(direct, "http://"+l.HTTP+"/new", forged); code != want {
			t.Errorf("direct /new %d from 127.0.2.9 with a forged X-Forwarded-For: %d, want %d", i+1, code, want)
		}
	}

	// Autoconfig and MTA-STS through the proxy.
	for _, u := range []string{"https://autoconfig." + mail + "/mail/config-v1.1.xml", "https://mta-sts." + mail + "/.well-known/mta-sts.txt"} {
		resp, err := viaNginx("127.0.0.1").Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !(strings.Contains(string(body), "<hostname>localhost</hostname>") || strings.Contains(string(body), "version: STSv1")) {
			t.Errorf("%s: %d %s", u, resp.StatusCode, body)
		}
	}
	// Plain HTTP at nginx: to HTTPS.
	c := clientFrom("127.0.0.1", nginxHTTP, nil)
	c.Transport.(*http.Transport).TLSClientConfig = nil
	resp, err := c.Get("http://" + chat + "/new")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://"+chat+"/new" {
		t.Errorf("plain HTTP at nginx: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestACMEThroughNginx: in tls.mode "acme" behind nginx, the mail certificate comes by
// HTTP-01 through nginx's port 80 (Pebble validates there; TLS-ALPN-01 cannot work
// with nginx on 443, and is tried and given up first), and SMTP STARTTLS then serves
// it.
func TestACMEThroughNginx(t *testing.T) {
	const name = "mail.example.org"
	dns := dnstest.New(t)
	dns.Add(name + ". 60 IN A 127.0.0.1")
	ports := testutil.FreePorts(t, 3)
	nginxHTTP := fmt.Sprintf("127.0.0.1:%d", ports[0])
	pebble := testutil.StartPebble(t, testutil.PebbleOptions{DNS: dns.Addr(), HTTPPort: ports[0], TLSPort: ports[1]})
	ca, err := testutil.NewCA("nginx test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, l := testutil.ServerConfig(t, fmt.Sprintf(`acme_directory = %q
acme_ca_file = %q

[dns]
resolver = %q
`, pebble.DirectoryURL, pebble.CAFile, dns.Addr()))
	text, _ := os.ReadFile(cfg)
	text = bytes.Replace(text, []byte(`hostname = "localhost"`), []byte(`hostname = "`+name+`"`), 1)
	text = bytes.Replace(text, []byte(`mode = "selfsigned"`), []byte(`mode = "acme"`), 1)
	text = bytes.Replace(text, []byte("https = \"\"\n"), []byte("https = \"\"\ntrusted_proxies = [\"127.0.0.1\"]\n"), 1)
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	startNginx(t, proxyServers(nginxHTTP, fmt.Sprintf("127.0.0.1:%d", ports[2]), l.HTTP, certFile, keyFile))
	proc, err := testutil.StartServerProc(t.Context(), coiboxBin, cfg, []string{l.HTTP, l.SMTP}, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = proc.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("coibox:\n%s", testutil.Tail(proc.Output(), 40))
		}
	})
	roots, err := pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		sc, _, err := testutil.DialSMTP(t.Context(), l.SMTP, testutil.SMTPDialOptions{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = sc.Hello("client.test")
		_, err = sc.StartTLS(&tls.Config{ServerName: name, RootCAs: roots})
		sc.Close()
		if err == nil {
			break
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) || time.Now().After(deadline) {
			t.Fatalf("STARTTLS with Pebble's root: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(proc.Output(), `msg="obtained ACME certificate"`) {
		t.Errorf("no issuance logged:\n%s", testutil.Tail(proc.Output(), 20))
	}
}
