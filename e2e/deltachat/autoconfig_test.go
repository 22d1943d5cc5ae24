package deltachat

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

// The names of the autoconfiguration test: they resolve through /etc/hosts (the
// core uses the system resolver) to an address of their own on the loopback net.
const (
	acDomain   = "autoconf.test"
	acHostname = "mail." + acDomain
	acIP       = "127.0.0.77"
	hostsFile  = "/etc/hosts"
)

// TestDeltaChatAutoconfig: a Delta Chat core given nothing but an address and a
// password configures from coibox's autoconfiguration: it fetches
// https://autoconfig.<domain>/mail/config-v1.1.xml (port 443, as the core only
// knows), and then connects to exactly the IMAP and submission ports that answer
// names, which nothing else told it. Needs root: it binds port 443 and adds the
// names to /etc/hosts for the test's duration.
func TestDeltaChatAutoconfig(t *testing.T) {
	node := needNode(t)
	if os.Geteuid() != 0 {
		if os.Getenv("COIBOX_ROOT_TESTS") == "1" {
			t.Fatal("COIBOX_ROOT_TESTS=1 but not root")
		}
		t.Skip("binds port 443 and edits /etc/hosts: needs root (CI runs it with COIBOX_ROOT_TESTS=1)")
	}
	if l, err := net.Listen("tcp", acIP+":443"); err != nil {
		t.Fatalf("port 443 on %s is not free: %v", acIP, err)
	} else {
		l.Close()
	}
	addHosts(t, acIP+" "+acDomain+" autoconfig."+acDomain+" "+acHostname)

	work := workDir(t)
	p := testutil.FreePortsOn(t, acIP, 6)
	addr := func(i int) string { return fmt.Sprintf("%s:%d", acIP, p[i]) }
	smtp, submission, submissions, imap, imaps, httpAddr := addr(0), addr(1), addr(2), addr(3), addr(4), addr(5)
	httpsAddr := acIP + ":443"
	cfg := writeHostConfig(t, work, acHostname, dnstest.New(t), testutil.Listeners{SMTP: smtp, Submission: submission,
		Submissions: submissions, IMAP: imap, IMAPS: imaps, HTTP: httpAddr, HTTPS: httpsAddr})
	coibox(t, cfg, "", "domain", "add", acDomain)
	password := randomPassword(t)
	coibox(t, cfg, password+"\n", "account", "add", "alice@"+acDomain)

	srv := &server{name: acHostname, config: cfg, logFile: filepath.Join(work, "coibox.log"),
		waitFor: []string{imap, imaps, submission, submissions, httpsAddr}, health: "http://" + httpAddr + "/healthz"}
	srv.start(t)
	runScenarios(t, node, "autoconfig.test.mjs", []string{
		"COIBOX_DOMAIN=" + acDomain,
		"COIBOX_IMAPS_PORT=" + port(imaps),
		"COIBOX_SUBMISSIONS_PORT=" + port(submissions),
		"COIBOX_PASSWORD_ALICE=" + password,
		"DC_WORK_DIR=" + filepath.Join(work, "deltachat"),
	}, srv)
	srv.stop(t)
	srv.verify(t)
}

// addHosts appends line to /etc/hosts, marked, and takes it out again when the test
// ends.
func addHosts(t *testing.T, line string) {
	t.Helper()
	mark := fmt.Sprintf(" # coibox test %d", os.Getpid())
	before, err := os.ReadFile(hostsFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(before)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if err := os.WriteFile(hostsFile, []byte(text+line+mark+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		now, err := os.ReadFile(hostsFile)
		if err != nil {
			t.Errorf("restore %s: %v", hostsFile, err)
			return
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(now), "\n") {
			if !strings.HasSuffix(strings.TrimRight(l, "\n"), mark) {
				keep = append(keep, l)
			}
		}
		if err := os.WriteFile(hostsFile, []byte(strings.Join(keep, "")), 0o644); err != nil {
			t.Errorf("restore %s: %v", hostsFile, err)
		}
	})
}
