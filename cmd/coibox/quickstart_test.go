package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/store"
)

// fakeMX answers one "220" greeting per connection, standing in for a remote mail
// server on port 25.
func fakeMX(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("220 mx.remote.example ESMTP\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestQuickstart: one command from nothing to a configured server (config, domain,
// DKIM keys, account with a password printed once, DNS records, checks); a second
// run changes nothing; the account logs in with the printed password.
func TestQuickstart(t *testing.T) {
	dns := dnstest.New(t)
	dns.Add("mail.example.org. 300 IN A 127.0.0.1")
	dns.Add("1.0.0.127.in-addr.arpa. 300 IN PTR mail.example.org.")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "etc", "coibox.toml")
	dataDir := filepath.Join(dir, "data")
	args := []string{"--config", cfgPath, "quickstart", "--data-dir", dataDir, "--resolver", dns.Addr(), "--port25-probe", fakeMX(t), "you@Example.org"}

	first := coibox(t, dir, "", args...)
	if first.code != 0 {
		t.Fatalf("quickstart: %d\n%s%s", first.code, first.stdout, first.stderr)
	}
	for _, want := range []string{
		"config: wrote " + cfgPath + " (hostname mail.example.org, tls.mode acme)",
		"data directory: " + dataDir,
		"added domain example.org",
		"example.org. 3600 IN MX 10 mail.example.org.",
		"added account you@example.org",
		"ok   the resolver (" + dns.Addr() + ") answers",
		"ok   mail.example.org resolves to this host ([127.0.0.1])",
		"ok   reverse DNS of 127.0.0.1 is mail.example.org",
		"ok   outbound port 25 is open",
		"systemctl enable --now coibox",
		"admin page: https://mail.example.org/admin/setup?token=",
	} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, first.stdout)
		}
	}
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(first.stdout)
	if m == nil {
		t.Fatalf("no password printed:\n%s", first.stdout)
	}
	password := m[1]

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if cfg.Hostname != "mail.example.org" || cfg.DataDir != dataDir || cfg.TLS.Mode != "acme" || cfg.TLS.ACMEEmail != "you@example.org" || cfg.DNS.Resolver != dns.Addr() {
		t.Errorf("config %+v %+v", cfg, cfg.TLS)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("config file mode %v, %v", fi.Mode(), err)
	}
	before, _ := os.ReadFile(cfgPath)

	again := coibox(t, dir, "", args...)
	if again.code != 0 {
		t.Fatalf("second quickstart: %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	for _, want := range []string{"config: keeping " + cfgPath, "domain example.org: already served", "account you@example.org: already exists, password unchanged"} {
		if !strings.Contains(again.stdout, want) {
			t.Errorf("second run lacks %q:\n%s", want, again.stdout)
		}
	}
	if strings.Contains(again.stdout, "password: ") {
		t.Errorf("second run printed a password:\n%s", again.stdout)
	}
	if after, _ := os.ReadFile(cfgPath); string(after) != string(before) {
		t.Errorf("second run changed the config:\n%s\n---\n%s", before, after)
	}

	if v := coibox(t, dir, "", "--config", cfgPath, "verify"); v.code != 0 {
		t.Errorf("verify: %d %s %s", v.code, v.stdout, v.stderr)
	}
	// The printed password is the account's.
	s, err := store.Open(t.Context(), dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Authenticate(t.Context(), "you@example.org", password); err != nil {
		t.Errorf("log in with the printed password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "dkim", "example.org")); err != nil {
		t.Errorf("no DKIM keys: %v", err)
	}
}

// TestQuickstartWarnings: with no DNS records yet and port 25 blocked, every check
// says what to do, and quickstart still succeeds.
func TestQuickstartWarnings(t *testing.T) {
	dns := dnstest.New(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	r := coibox(t, dir, "", "--config", filepath.Join(dir, "c.toml"), "quickstart", "--data-dir", filepath.Join(dir, "d"),
		"--tls", "selfsigned", "--hostname", "mx.example.net", "--resolver", dns.Addr(), "--port25-probe", closed, "you@example.net")
	if r.code != 0 {
		t.Fatalf("quickstart: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"config: wrote " + filepath.Join(dir, "c.toml") + " (hostname mx.example.net, tls.mode selfsigned)",
		"WARN mx.example.net has no address record yet: publish the A/AAAA record above",
		"WARN outbound port 25 to " + closed + " does not connect",
		"queue.smarthost",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	bad := coibox(t, dir, "", "--config", filepath.Join(dir, "x.toml"), "quickstart", "--hostname", "no spaces allowed", "a@example.net")
	if bad.code == 0 {
		t.Errorf("a bad hostname was accepted:\n%s", bad.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.toml")); !os.IsNotExist(err) {
		t.Errorf("a refused quickstart left a config behind: %v", err)
	}
}

// TestAdminNeedsDataDir: admin commands refuse a data directory that does not exist
// (a wrong --config or data_dir), and create nothing; quickstart creates it.
func TestAdminNeedsDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	missing := filepath.Join(dir, "no-such-dir")
	if err := os.WriteFile(cfg, []byte("hostname = \"mail.example.org\"\ndata_dir = \""+missing+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"domain", "add", "example.org"}, {"account", "list"}, {"verify"}, {"backup", filepath.Join(dir, "bk")}} {
		r := coibox(t, dir, "", append([]string{"--config", cfg}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "data directory "+missing+" (data_dir of "+cfg+") does not exist: coibox serve or coibox quickstart creates it") {
			t.Errorf("%v: %d %q", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a refused command created the data directory: %v", err)
	}
}
