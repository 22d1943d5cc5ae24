package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

// withDataDir writes a copy of the config file at cfg with another data_dir and
// returns its path.
func withDataDir(t *testing.T, cfg, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^data_dir = .*$`).ReplaceAllString(string(b), "data_dir = "+strconv.Quote(dataDir))
	p := filepath.Join(t.TempDir(), "coibox.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeOneDataDir: a second server on the same data directory (other ports) refuses
// to start, naming the first; admin commands go on working beside it; the lock goes
// with the process, even after kill -9.
func TestServeOneDataDir(t *testing.T) {
	cfgA, dataDir, _ := testutil.ServerConfig(t, "")
	cfgOther, _, lB := testutil.ServerConfig(t, "")
	cfgB := withDataDir(t, cfgOther, dataDir)
	first := startServer(t, cfgA)
	pid := strconv.Itoa(first.cmd.Process.Pid)

	step{wantCode: 1, wantStderr: []string{"coibox: data directory " + dataDir + " is in use by another coibox serve (pid " + pid + "); stop it first, or give this server its own data_dir"}}.
		check(t, coibox(t, "", "", "serve", "--config", cfgB))
	if nc, err := net.Dial("tcp", lB.SMTP); err == nil {
		nc.Close()
		t.Error("the refused server left its SMTP port open")
	}
	runSteps(t, "", []step{
		{name: "domain add beside the server", args: []string{"domain", "add", "example.org", "--config", cfgB}, wantStdout: []string{"added domain example.org"}},
		{name: "verify beside the server", args: []string{"verify", "--config", cfgB}, wantStdout: []string{"store is consistent"}},
	})

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	second := startServer(t, cfgB)
	second.stop(t, syscall.SIGTERM)
}

func TestPasswordMinimum(t *testing.T) {
	cfg, _, _ := testutil.ServerConfig(t, "")
	short, _, _ := testutil.ServerConfig(t, "[limits]\npassword_min_length = 4\n")
	c := "--config=" + cfg
	runSteps(t, "", []step{{name: "domain add", args: []string{"domain", "add", "example.org", c}}})
	tooShort := "fewer than the 10 of limits.password_min_length; give a longer one, or an empty stdin to have one generated"
	runSteps(t, "", []step{
		{name: "one character", args: []string{"account", "add", "a@example.org", c}, stdin: "x\n", wantCode: 1,
			wantStderr: []string{"coibox: account add a@example.org: the password has 1 characters, " + tooShort}},
		{name: "a single space", args: []string{"account", "add", "a@example.org", c}, stdin: " \n", wantCode: 1, wantStderr: []string{tooShort}},
		{name: "nine characters", args: []string{"account", "add", "a@example.org", c}, stdin: "123456789\n", wantCode: 1, wantStderr: []string{"has 9 characters"}},
		{name: "nine characters in 18 bytes", args: []string{"account", "add", "a@example.org", c}, stdin: "ääääääääää"[2:] + "\n", wantCode: 1, wantStderr: []string{"has 9 characters"}},
		{name: "ten characters", args: []string{"account", "add", "a@example.org", c}, stdin: "1234567890\n", wantStdout: []string{"added account a@example.org"}},
		{name: "generated", args: []string{"account", "add", "b@example.org", c}, wantStdout: []string{"re:password: [a-zA-Z0-9]{20}\n"}},
		{name: "passwd too short", args: []string{"account", "passwd", "a@example.org", c}, stdin: "short\n", wantCode: 1,
			wantStderr: []string{"account passwd a@example.org: the password has 5 characters"}},
		{name: "passwd long enough", args: []string{"account", "passwd", "a@example.org", c}, stdin: "long enough now\n", wantStdout: []string{"changed the password"}},
		{name: "configured minimum: domain", args: []string{"domain", "add", "example.org", "--config", short}},
		{name: "configured minimum", args: []string{"account", "add", "c@example.org", "--config", short}, stdin: "abcd\n", wantStdout: []string{"added account c@example.org"}},
	})
}

func TestDomainAndAccountInput(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "IP address", args: []string{"domain", "add", "127.0.0.1", c}, wantCode: 2, wantStderr: []string{`domain add: "127.0.0.1" is an IP address, not a domain name`}},
		{name: "single label", args: []string{"domain", "add", "a", c}, wantCode: 2, wantStderr: []string{`"a" is not a domain name: it has a single label`}},
		{name: "underscore inside", args: []string{"domain", "add", "exa_mple.org", c}, wantCode: 2, wantStderr: []string{`"_" may only start the first label`}},
		{name: "long label", args: []string{"domain", "add", strings.Repeat("x", 64) + ".org", c}, wantCode: 2, wantStderr: []string{"is longer than 63 characters"}},
		{name: "double dot", args: []string{"domain", "add", "bad..domain", c}, wantCode: 2, wantStderr: []string{"has an empty label"}, notStdout: []string{"added"}},
		{name: "test domain", args: []string{"domain", "add", "_lan.example", c}, wantStdout: []string{"added domain _lan.example"}},
		{name: "internationalized", args: []string{"domain", "add", "Bücher.example", c}, wantStdout: []string{"added domain xn--bcher-kva.example"}},
		{name: "account in an IDN", args: []string{"account", "add", "jörg@bücher.example", c}, stdin: "long enough pw\n", wantStdout: []string{"added account jörg@xn--bcher-kva.example"}},
		{name: "account with a space", args: []string{"account", "add", "a b@bücher.example", c}, stdin: "long enough pw\n", wantCode: 2, wantStderr: []string{"is not a valid address"}},
		{name: "account local part of 65", args: []string{"account", "add", strings.Repeat("a", 65) + "@bücher.example", c}, stdin: "long enough pw\n", wantCode: 2, wantStderr: []string{"longer than 64 octets"}},
		{name: "shown by its Unicode name", args: []string{"domain", "show", "bücher.example", c}, wantStdout: []string{"registration"}},
		{name: "only the good ones listed", args: []string{"domain", "list", c}, wantStdout: []string{"_lan.example", "xn--bcher-kva.example"},
			notStdout: []string{"127.0.0.1", "bad..domain", "exa_mple"}},
	})

	// A failure after the domain is stored (here the DKIM keys cannot be written)
	// takes the domain back: nothing is printed as added, nothing is listed.
	if err := os.RemoveAll(filepath.Join(dataDir, "dkim")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "dkim"), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	runSteps(t, "", []step{
		{name: "DKIM step fails", args: []string{"domain", "add", "late.example", c}, wantCode: 1,
			wantStderr: []string{"domain add late.example: ", "; the domain was not added"}, notStdout: []string{"added"}},
		{name: "not listed", args: []string{"domain", "list", c}, notStdout: []string{"late.example"}},
	})
}

// TestSilentSocketsDoNotStarve is the scenario: with limits.smtp_connections =
// 60, 60 sockets from 3 addresses that never send a ClientHello on 465 used to close
// ports 25 and 587 to everyone for the 5-minute command timeout. The same for IMAP,
// with silent sockets on 993 and limits.imap_connections.
func TestSilentSocketsDoNotStarve(t *testing.T) {
	cfg, _, l := testutil.ServerConfig(t, "[limits]\nsmtp_connections = 60\nimap_connections = 40\ntls_handshake_timeout = \"30s\"\n")
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "example.org", c}},
		{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "alice password\n"},
	})
	srv := startServer(t, cfg)
	silent := func(addr, ip string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
	}
	for i := range 60 {
		silent(l.Submissions, fmt.Sprintf("127.0.1.%d", 1+i%3))
	}
	for i := range 40 {
		silent(l.IMAPS, fmt.Sprintf("127.0.1.%d", 1+i%2))
	}
	// Wait until the server holds them all.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := httpGet(t, "http://"+l.HTTP+"/metrics")
		if strings.Contains(body, `coibox_smtp_sessions{listener="submissions"} 60`) && strings.Contains(body, "coibox_imap_sessions 40") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the silent sockets were not all admitted:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	sc := dialSMTP(t, l.SMTP, nil)
	expect(t, "send on port 25", 250)(sc.Send("bob@remote.example", []string{"alice@example.org"}, testMessage("bob@remote.example", "through the crowd")))
	_ = sc.Quit()
	sub := dialSMTP(t, l.Submission, nil)
	expect(t, "STARTTLS on 587", 220)(sub.StartTLS(&tls.Config{InsecureSkipVerify: true}))
	_ = sub.Quit()
	ic, err := imapclient.DialTLS(l.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice@example.org", "alice password").Wait(); err != nil {
		t.Fatalf("IMAP LOGIN beside 40 silent sockets: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("served after %v", d)
	}
	srv.stop(t, syscall.SIGTERM)
}

// TestSlowloris: 500 sockets that never speak, spread over 50 loopback addresses and
// every port, do not keep a normal client from sending and reading mail; silent TLS
// sockets are closed at the handshake deadline (issue 13, "Slowloris and floods").
func TestSlowloris(t *testing.T) {
	cfg, _, l := testutil.ServerConfig(t, "[limits]\ntls_handshake_timeout = \"2s\"\n")
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "example.org", c}},
		{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "alice password\n"},
	})
	srv := startServer(t, cfg)
	ports := []string{l.SMTP, l.Submission, l.Submissions, l.IMAP, l.IMAPS, l.HTTP}
	var tlsSilent []net.Conn
	for i := range 500 {
		addr := ports[i%len(ports)]
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.2.%d", 1+i%50))}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("silent socket %d: %v", i, err)
		}
		t.Cleanup(func() { nc.Close() })
		if addr == l.Submissions || addr == l.IMAPS {
			tlsSilent = append(tlsSilent, nc)
		}
	}
	start := time.Now()
	sub := dialSMTP(t, l.Submission, nil)
	expect(t, "STARTTLS", 220)(sub.StartTLS(&tls.Config{InsecureSkipVerify: true}))
	expect(t, "EHLO", 250)(sub.Hello("client.example.org"))
	expect(t, "AUTH", 235)(sub.AuthPlain("alice@example.org", "alice password"))
	expect(t, "send", 250)(sub.Send("alice@example.org", []string{"alice@example.org"}, testMessage("alice@example.org", "through the flood")))
	_ = sub.Quit()
	ic, err := imapclient.DialTLS(l.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice@example.org", "alice password").Wait(); err != nil {
		t.Fatalf("IMAP LOGIN beside 500 silent sockets: %v", err)
	}
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("INBOX beside 500 silent sockets: %+v %v", sel, err)
	}
	took := time.Since(start)
	t.Logf("sent and read one message beside 500 silent sockets in %v", took)
	if took > 5*time.Second {
		t.Errorf("a normal client took %v beside the silent sockets", took)
	}
	// The silent TLS sockets are closed at the 2 s handshake deadline.
	deadline := time.Now().Add(10 * time.Second)
	for _, nc := range tlsSilent {
		_ = nc.SetReadDeadline(deadline)
		if _, err := nc.Read(make([]byte, 1)); err == nil || time.Now().After(deadline) {
			t.Fatalf("a silent TLS socket stayed open past the handshake deadline (%v)", err)
		}
	}
	srv.stop(t, syscall.SIGTERM)
}
