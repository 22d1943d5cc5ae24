// Package deltachat tests coibox with the real Delta Chat core as its client: the Go test
// starts a coibox server and runs deltachat.test.mjs, which drives deltachat-rpc-server.
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

const (
	domain   = "coibox.test"
	hostname = "mail.coibox.test"
	// rpcServer is what setup.sh installs; without it the test is skipped.
	rpcServer = "node_modules/@deltachat/stdio-rpc-server-linux-x64/deltachat-rpc-server"
	// nodeBudget bounds the whole node run when the test has no deadline of its own.
	nodeBudget = 8 * time.Minute
)

var users = []string{"alice", "bob", "carol"}

// TestDeltaChat runs the scenarios with accounts an admin made on an ordinary domain.
func TestDeltaChat(t *testing.T) { runDeltaChat(t, false) }

// TestDeltaChatChatmail runs them on a chatmail domain: each core logs in with an
// address nobody made (the account appears at its first login, chatmail §3),
// advertises XCHATMAIL, and everything it sends must pass encryption enforcement,
// the From rule, header scrubbing and the send rate.
func TestDeltaChatChatmail(t *testing.T) { runDeltaChat(t, true) }

func runDeltaChat(t *testing.T, chatmail bool) {
	if _, err := os.Stat(rpcServer); err != nil {
		t.Skip("Delta Chat core is not installed: run e2e/deltachat/setup.sh first (needs node and npm)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node_modules is installed but node is not on PATH: %v", err)
	}

	work := t.TempDir()
	if os.Getenv("COIBOX_E2E_KEEP") != "" {
		work, err = os.MkdirTemp("", "coibox-deltachat-")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping server data, client profiles and logs in %s", work)
	}
	bin := filepath.Join(work, "coibox")
	if err := testutil.Build(bin, "github.com/coibox/coibox/cmd/coibox"); err != nil {
		t.Fatal(err)
	}

	p := testutil.FreePorts(t, 6)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	smtp, submission, submissions, imap, imaps, httpAddr := addr(0), addr(1), addr(2), addr(3), addr(4), addr(5)
	// DNS goes to an in-process server that knows no names: every lookup the server
	// makes (there should be none for local mail) fails fast and offline.
	dns := dnstest.New(t)
	cfg := filepath.Join(work, "coibox.toml")
	writeFile(t, cfg, fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "debug"

[dns]
resolver = %q

[listen]
smtp = %q
submission = %q
submissions = %q
imap = %q
imaps = %q
http = %q
https = ""

[tls]
mode = "selfsigned"

[chat]
turn_listen = ""
`, hostname, filepath.Join(work, "data"), dns.Addr(), smtp, submission, submissions, imap, imaps, httpAddr))

	passwords := map[string]string{}
	for _, u := range users {
		passwords[u] = randomPassword(t)
	}
	if chatmail {
		// The scenario's names are shorter than chatmail's 9 characters; the load of a
		// shared test machine says nothing about the server.
		coibox(t, bin, cfg, "", "domain", "add", "--chatmail", domain)
		coibox(t, bin, cfg, "", "domain", "set", domain, "localpart_len=3..20", "resource_guard=off")
	} else {
		coibox(t, bin, cfg, "", "domain", "add", domain)
		for _, u := range users {
			coibox(t, bin, cfg, passwords[u]+"\n", "account", "add", u+"@"+domain)
		}
	}

	srvLog, err := os.Create(filepath.Join(work, "coibox.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srvLog.Close() }) // after the server stops: cleanups run last-in first-out
	srv, err := testutil.StartServerProc(t.Context(), bin, cfg,
		[]string{imap, imaps, submission, submissions}, 30*time.Second, srvLog)
	if err != nil {
		t.Fatalf("coibox serve (listen.imap %s, listen.imaps %s, listen.submission %s, listen.submissions %s): %v",
			imap, imaps, submission, submissions, err)
	}
	var stopOnce sync.Once
	var stopErr error
	stopServer := func() error {
		stopOnce.Do(func() {
			code, err := srv.Stop(20 * time.Second)
			if err == nil && code != 0 {
				err = fmt.Errorf("exit code %d", code)
			}
			stopErr = err
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stopServer() })
	serverFailed := func() {
		t.Logf("coibox log (tail of %s):\n%s", srvLog.Name(), testutil.Tail(srv.Output(), 300))
	}

	budget := nodeBudget
	if dl, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(dl)-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	dcWork := filepath.Join(work, "deltachat")
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "deltachat.test.mjs")
	cmd.Env = append(os.Environ(),
		"COIBOX_HOST=127.0.0.1",
		"COIBOX_DOMAIN="+domain,
		"COIBOX_IMAP_PORT="+port(imap),
		"COIBOX_IMAPS_PORT="+port(imaps),
		"COIBOX_SUBMISSION_PORT="+port(submission),
		"COIBOX_SUBMISSIONS_PORT="+port(submissions),
		"DC_WORK_DIR="+dcWork,
		"NO_COLOR=1",
	)
	for _, u := range users {
		cmd.Env = append(cmd.Env, "COIBOX_PASSWORD_"+strings.ToUpper(u)+"="+passwords[u])
	}
	// node starts one deltachat-rpc-server per device: give them a process group of
	// their own so that none outlives the test.
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
	runErr := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers only; node is gone
	}
	srvErr := stopServer()

	if runErr != nil {
		serverFailed()
		shown := "its output is above"
		if !testing.Verbose() {
			shown = "output:\n" + out.String()
		}
		if ctx.Err() != nil {
			t.Fatalf("Delta Chat scenarios did not finish within %v (killed); %s", budget, shown)
		}
		t.Fatalf("Delta Chat scenarios failed after %v: %v; %s", time.Since(start).Round(time.Millisecond), runErr, shown)
	}
	if !testing.Verbose() {
		// The latency table, for the record.
		o := out.String()
		if i := strings.LastIndex(o, "latencies (ms):"); i >= 0 {
			if j := strings.Index(o[i:], "end of latencies"); j >= 0 {
				t.Logf("%s", strings.TrimRight(o[i:i+j], "\n"))
			}
		}
	}
	if srvErr != nil {
		serverFailed()
		t.Errorf("coibox serve did not stop cleanly after SIGTERM: %v", srvErr)
	}
	if out, err := exec.Command(bin, "--config", cfg, "verify").CombinedOutput(); err != nil {
		t.Errorf("coibox verify after the scenarios: %v\n%s", err, out)
	}
}

// coibox runs one administrative command and fails the test if it fails.
func coibox(t *testing.T, bin, cfg, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("coibox %s: %v\n%s", strings.Join(args, " "), err, out)
	}
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
