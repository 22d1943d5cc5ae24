// Package testutil holds helpers shared by coibox's tests: free TCP ports, building
// binaries once per test run, config files that point a server at them, server
// processes, an SMTP client and a certificate authority for multi-host tests.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago.
// All n listeners are open at once before any is closed, so the ports differ from each
// other; another process may still take one before the caller binds it, which tests
// accept as rare.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	return FreePortsOn(t, "127.0.0.1", n)
}

// FreePort returns one free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int { return FreePorts(t, 1)[0] }

// FreePortsOn is FreePorts on ip, for servers on other loopback addresses than
// 127.0.0.1.
func FreePortsOn(t testing.TB, ip string, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("find free port on %s: %v", ip, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// SharedPort returns a TCP port free on every one of ips at once, for servers that
// must all listen on one port (an SMTP port that queue.remote_port reaches on each).
func SharedPort(t testing.TB, ips ...string) int {
	t.Helper()
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("find free port on %s: %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{first}
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no TCP port free on all of %v", ips)
	return 0
}

// Build compiles the Go package pkg (an import path, or a ./relative path resolved from
// the calling test's directory) to the file out, passing extraArgs (e.g. -ldflags) to
// go build. It is meant for TestMain, so it reports failure as an error rather than
// through a testing.T.
func Build(out, pkg string, extraArgs ...string) error {
	args := append([]string{"build", "-o", out}, extraArgs...)
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, stderr.String())
	}
	return nil
}

// MainWithBinary is the body of a TestMain whose tests run a built program: it builds
// pkg into a temporary directory, sets *bin to the binary's path, runs the tests and
// removes the directory. It returns the exit code for os.Exit.
func MainWithBinary(m *testing.M, pkg string, bin *string) int {
	dir, err := os.MkdirTemp("", "coibox-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	name := path.Base(pkg)
	if abs, err := filepath.Abs(pkg); err == nil && strings.HasPrefix(pkg, ".") {
		name = filepath.Base(abs) // "." in cmd/coibox builds "coibox"
	}
	*bin = filepath.Join(dir, name)
	if err := Build(*bin, pkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Listeners are the addresses a test server listens on.
type Listeners struct {
	SMTP, Submission, Submissions, IMAP, IMAPS, HTTP string
	// HTTPS is "" (off) unless the test gives it.
	HTTPS string
}

// TOML is the config's [listen] table for l.
func (l Listeners) TOML() string {
	return fmt.Sprintf("[listen]\nsmtp = %q\nsubmission = %q\nsubmissions = %q\nimap = %q\nimaps = %q\nhttp = %q\nhttps = %q\n",
		l.SMTP, l.Submission, l.Submissions, l.IMAP, l.IMAPS, l.HTTP, l.HTTPS)
}

// ServerConfig writes a coibox config file into a fresh temporary directory: data in
// that directory, hostname localhost, a self-signed certificate and every listener on a
// free 127.0.0.1 port (HTTPS off). It returns the file's path, the data directory and
// the listener addresses. extra is appended verbatim, for tables a test adds.
func ServerConfig(t testing.TB, extra string) (path, dataDir string, l Listeners) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	// Made here, as install.sh or quickstart would: admin commands refuse a data
	// directory that does not exist, and tests often add domains before serving.
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatalf("make data directory: %v", err)
	}
	p := FreePorts(t, 6)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	l = Listeners{SMTP: addr(0), Submission: addr(1), Submissions: addr(2), IMAP: addr(3), IMAPS: addr(4), HTTP: addr(5)}
	text := fmt.Sprintf(`hostname = "localhost"
data_dir = %q
log_level = "debug"

%s
[tls]
mode = "selfsigned"
%s`, dataDir, l.TOML(), extra)
	path = filepath.Join(dir, "coibox.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	return path, dataDir, l
}

// WaitListening waits until addr accepts TCP connections or timeout passes, and
// returns how long that took.
func WaitListening(t testing.TB, addr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s not listening after %v: %v", addr, timeout, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
