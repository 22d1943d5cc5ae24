// Package deltachat tests coibox with the real Delta Chat core as its client: the Go test
// starts coibox servers and runs a scenario file (deltachat.test.mjs and then
// coi.test.mjs on one host, federation.test.mjs across two), which drives
// deltachat-rpc-server.
package deltachat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

const (
	domain   = "coibox.test"
	hostname = "mail.coibox.test"
	// rpcServer is what setup.sh installs; without it the tests are skipped.
	rpcServer = "node_modules/@deltachat/stdio-rpc-server-linux-x64/deltachat-rpc-server"
	// nodeBudget bounds one node run when the test has no deadline of its own.
	nodeBudget = 8 * time.Minute
	// stopGrace is how long a server may take to exit after SIGTERM.
	stopGrace = 20 * time.Second
)

// users are the accounts of deltachat.test.mjs that a password is made for; dave is
// the device that reaches the server through the HTTPS port only (scenario 9).
var users = []string{"alice", "bob", "carol", "dave"}

// coiboxBin is the binary TestMain builds.
var coiboxBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.MainWithBinary(m, "github.com/coibox/coibox/cmd/coibox", &coiboxBin))
}

// TestDeltaChat runs the scenarios with accounts an admin made on an ordinary domain,
// then turns COI filing on for carol and runs coi.test.mjs on the same profiles
// (coiFiling).
func TestDeltaChat(t *testing.T) { runDeltaChat(t, false) }

// TestDeltaChatChatmail runs them on a chatmail domain: each core logs in with an
// address nobody made (the account appears at its first login, chatmail §3),
// advertises XCHATMAIL, and everything it sends must pass encryption enforcement,
// the From rule, header scrubbing and the send rate. Three more devices get their
// accounts from /new (§13 #7).
func TestDeltaChatChatmail(t *testing.T) { runDeltaChat(t, true) }

func runDeltaChat(t *testing.T, chatmail bool) {
	node := needNode(t)
	work := workDir(t)

	p := testutil.FreePorts(t, 7)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	smtp, submission, submissions, imap, imaps, httpAddr, httpsAddr := addr(0), addr(1), addr(2), addr(3), addr(4), addr(5), addr(6)
	// DNS goes to an in-process server that knows no names: every lookup the server
	// makes (there should be none for local mail) fails fast and offline.
	// listen.https carries IMAP and submission as well, by ALPN (chat.alpn443 is on
	// by default): scenario 9's device uses nothing else.
	cfg := writeHostConfig(t, work, hostname, dnstest.New(t), testutil.Listeners{SMTP: smtp, Submission: submission,
		Submissions: submissions, IMAP: imap, IMAPS: imaps, HTTP: httpAddr, HTTPS: httpsAddr})
	passwords := map[string]string{}
	for _, u := range users {
		passwords[u] = randomPassword(t)
	}
	if chatmail {
		// The scenario's names are shorter than chatmail's 9 characters; the load of a
		// shared test machine says nothing about the server.
		coibox(t, cfg, "", "domain", "add", "--chatmail", domain)
		coibox(t, cfg, "", "domain", "set", domain, "localpart_len=3..20", "resource_guard=off")
	} else {
		coibox(t, cfg, "", "domain", "add", domain)
		for _, u := range users {
			coibox(t, cfg, passwords[u]+"\n", "account", "add", u+"@"+domain)
		}
	}

	srv := &server{name: hostname, config: cfg, logFile: filepath.Join(work, "coibox.log"),
		waitFor: []string{imap, imaps, submission, submissions, httpsAddr}, health: "http://" + httpAddr + "/healthz"}
	srv.start(t)

	env := []string{
		"COIBOX_HOST=127.0.0.1",
		"COIBOX_DOMAIN=" + domain,
		"COIBOX_IMAP_PORT=" + port(imap),
		"COIBOX_IMAPS_PORT=" + port(imaps),
		"COIBOX_SUBMISSION_PORT=" + port(submission),
		"COIBOX_SUBMISSIONS_PORT=" + port(submissions),
		"COIBOX_HTTP_PORT=" + port(httpAddr),
		"COIBOX_HTTPS_PORT=" + port(httpsAddr),
		"COIBOX_BIN=" + coiboxBin,
		"COIBOX_CONFIG=" + cfg,
		"DC_WORK_DIR=" + filepath.Join(work, "deltachat"),
	}
	if chatmail {
		env = append(env, "COIBOX_CHATMAIL=1")
	}
	for _, u := range users {
		env = append(env, "COIBOX_PASSWORD_"+strings.ToUpper(u)+"="+passwords[u])
	}
	runScenarios(t, node, "deltachat.test.mjs", env, srv)
	if !chatmail {
		coiFiling(t, node, cfg, env, srv, imaps, smtp, "carol@"+domain, passwords["carol"])
	}
	srv.stop(t)
	srv.verify(t)
}

// writeHostConfig writes work/coibox.toml for a one-host test: hostname, data in
// work/data (made here: admin commands refuse a missing one), the listeners, a
// self-signed certificate, no TURN, and DNS from dns, an in-process server that
// knows no names, so that every lookup the server makes (there should be none for
// local mail) fails fast and offline. It returns the config's path.
func writeHostConfig(t *testing.T, work, hostname string, dns *dnstest.Server, l testutil.Listeners) string {
	t.Helper()
	cfg := filepath.Join(work, "coibox.toml")
	writeFile(t, cfg, fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "debug"

[dns]
resolver = %q

%s
[tls]
mode = "selfsigned"

[chat]
turn_listen = ""
`, hostname, filepath.Join(work, "data"), dns.Addr(), l.TOML()))
	if err := os.MkdirAll(filepath.Join(work, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// needNode skips the test when setup.sh has not installed the Delta Chat core and
// returns the path of node.
func needNode(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(rpcServer); err != nil {
		t.Skip("Delta Chat core is not installed: run e2e/deltachat/setup.sh first (needs node and npm)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node_modules is installed but node is not on PATH: %v", err)
	}
	return node
}

// workDir is where a test keeps server data, client profiles and logs: a temporary
// directory, or with COIBOX_E2E_KEEP one that outlives the test.
func workDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("COIBOX_E2E_KEEP") == "" {
		return t.TempDir()
	}
	work, err := os.MkdirTemp("", "coibox-"+strings.ToLower(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keeping server data, client profiles and logs in %s", work)
	return work
}

// server is one `coibox serve` of a test; its output goes to logFile as well, which
// collects every start of it.
type server struct {
	name, config, logFile string
	// waitFor are the addresses that must accept connections, and health the
	// /healthz URL that must answer, before the server counts as started.
	waitFor []string
	health  string
	proc    *testutil.ServerProc
}

// start runs the server and waits until it is ready; it is stopped at the test's end
// if the test does not stop it.
func (s *server) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := testutil.StartServerProc(t.Context(), coiboxBin, s.config, s.waitFor, 30*time.Second, log)
	if err == nil {
		err = proc.WaitHealthy(t.Context(), s.health, 30*time.Second)
	}
	if err != nil {
		log.Close()
		t.Fatalf("start %s (listening on %s): %v", s.name, strings.Join(s.waitFor, ", "), err)
	}
	s.proc = proc
	t.Cleanup(func() {
		select {
		case <-proc.Done(): // the test stopped it
		default:
			if code, err := proc.Stop(stopGrace); err != nil || code != 0 {
				t.Errorf("%s at the test's end: exit code %d, %v", s.name, code, err)
			}
		}
		log.Close() // after the server is gone: cleanups run last-in first-out
	})
}

// stop ends the server with SIGTERM and fails the test unless it exits cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if code, err := s.proc.Stop(stopGrace); err != nil || code != 0 {
		t.Errorf("%s did not stop cleanly after SIGTERM: exit code %d, %v\n%s", s.name, code, err, testutil.Tail(s.proc.Output(), 40))
	}
}

// verify runs `coibox verify` on the stopped server's store.
func (s *server) verify(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(coiboxBin, "--config", s.config, "verify").CombinedOutput(); err != nil {
		t.Errorf("coibox verify of %s after the scenarios: %v\n%s", s.name, err, out)
	}
}

// tail is the end of the server's output of its current run, for failure reports.
func (s *server) tail() string {
	return fmt.Sprintf("%s log (tail; all of it in %s):\n%s", s.name, s.logFile, testutil.Tail(s.proc.Output(), 300))
}

// runScenarios runs the scenario file script with node and env added to the test's
// environment. node starts one deltachat-rpc-server per device; they all share a
// process group of their own so that none outlives the run. When a scenario fails it
// prints the servers' logs and fails the test; otherwise it logs the latency table.
func runScenarios(t *testing.T, node, script string, env []string, servers ...*server) {
	t.Helper()
	budget := nodeBudget
	if dl, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(dl)-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", script)
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	var w io.Writer = &out
	if testing.Verbose() {
		w = io.MultiWriter(&out, os.Stdout)
	}
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers only; node is gone
	}
	if err != nil {
		for _, s := range servers {
			t.Log(s.tail())
		}
		shown := "its output is above"
		if !testing.Verbose() {
			shown = "output:\n" + out.String()
		}
		if ctx.Err() != nil {
			t.Fatalf("%s did not finish within %v (killed); %s", script, budget, shown)
		}
		t.Fatalf("%s failed after %v: %v; %s", script, time.Since(start).Round(time.Millisecond), err, shown)
	}
	if !testing.Verbose() {
		// The latency table, for the record.
		o := out.String()
		if i := strings.LastIndex(o, "latencies (ms):"); i >= 0 {
			if j := strings.Index(o[i:], "end of latencies"); j >= 0 {
				t.Logf("%s (%v):\n%s", script, time.Since(start).Round(time.Millisecond), strings.TrimRight(o[i:i+j], "\n"))
			}
		}
	}
}

// coibox runs one administrative command and fails the test if it fails.
func coibox(t *testing.T, cfg, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(coiboxBin, append([]string{"--config", cfg}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("coibox %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func randomPassword(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
