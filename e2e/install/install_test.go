package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// The Debian releases install.sh is tested on (12 and 13), and their mirror.
var suites = []string{"bookworm", "trixie"}

const mirror = "http://deb.debian.org/debian"

var coiboxBin string

func TestMain(m *testing.M) { os.Exit(testutil.MainWithBinary(m, "../../cmd/coibox", &coiboxBin)) }

// needRoot skips without root, unless COIBOX_ROOT_TESTS=1 says the machine (CI) must
// run it.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("COIBOX_ROOT_TESTS") == "1" {
			t.Fatal("COIBOX_ROOT_TESTS=1 but not root")
		}
		t.Skip("install.sh is tested as root, in a debootstrap'ed Debian root (CI runs it with COIBOX_ROOT_TESTS=1)")
	}
}

func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func must(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := run(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// debianRoot returns a fresh copy of a minimal Debian root with systemd, made once
// per machine with debootstrap and kept under the cache directory.
func debianRoot(t *testing.T, suite string) string {
	t.Helper()
	if _, err := exec.LookPath("debootstrap"); err != nil {
		must(t, 10*time.Minute, "apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", "debootstrap", "systemd-container")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "coibox-test", "debian-"+suite)
	if _, err := os.Stat(filepath.Join(base, ".complete")); err != nil {
		os.RemoveAll(base)
		start := time.Now()
		must(t, 20*time.Minute, "debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus,adduser,ca-certificates", suite, base, mirror)
		if err := os.WriteFile(filepath.Join(base, ".complete"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("debootstrap %s: %v", suite, time.Since(start).Round(time.Second))
	}
	root := filepath.Join(t.TempDir(), "root")
	must(t, 5*time.Minute, "cp", "-a", base, root)
	return root
}

// machine is a Debian root that install.sh runs in: booted (commands enter its
// namespaces) or a chroot.
type machine struct {
	root   string
	booted bool
	leader int // PID 1 of the booted container
	stop   func()
}

// exec runs a shell command line inside the machine.
func (m *machine) exec(t *testing.T, env []string, cmdline string) (string, error) {
	t.Helper()
	args := []string{"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	args = append(args, env...)
	args = append(args, "/bin/sh", "-c", cmdline)
	if m.booted {
		return run(t, 3*time.Minute, "nsenter", append([]string{"-t", fmt.Sprint(m.leader), "-m", "-u", "-i", "-n", "-p", "--"}, args...)...)
	}
	return run(t, 3*time.Minute, "chroot", append([]string{m.root}, args...)...)
}

func (m *machine) must(t *testing.T, env []string, cmdline string) string {
	t.Helper()
	out, err := m.exec(t, env, cmdline)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, out)
	}
	return out
}

// boot starts systemd in root under systemd-nspawn with its own network (only
// loopback), and waits until it has reached its default target. It reports false
// when the machine cannot boot containers. --register=no and --keep-unit spare
// nspawn the host's systemd, which CI machines may not run.
func boot(t *testing.T, root string) (*machine, bool, string) {
	t.Helper()
	// A machine-id makes systemd start normally; nspawn needs none given.
	_ = os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	var log bytes.Buffer
	cmd := exec.Command("systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--private-network", "--quiet",
		"--machine=coiboxtest", "--directory="+root, "--console=pipe")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, false, err.Error()
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt) // nspawn powers the container off
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	m := &machine{root: root, booted: true, stop: stop}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return nil, false, "systemd-nspawn exited: " + log.String()
		case <-time.After(200 * time.Millisecond):
		}
		if m.leader == 0 {
			out, err := exec.Command("pgrep", "-P", fmt.Sprint(cmd.Process.Pid)).Output()
			if err != nil {
				continue
			}
			fmt.Sscan(string(out), &m.leader)
			continue
		}
		out, _ := m.exec(t, nil, "systemctl is-system-running --wait 2>/dev/null || true")
		if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
			return m, true, ""
		}
	}
	stop()
	return nil, false, "systemd did not come up within 60 s: " + log.String()
}

// TestInstall installs coibox with install.sh on each Debian release, upgrades it
// (with a backup), rolls a broken upgrade back, and uninstalls it, keeping then
// purging the data.
func TestInstall(t *testing.T) {
	needRoot(t)
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) { testInstall(t, suite) })
	}
}

func testInstall(t *testing.T, suite string) {
	root := debianRoot(t, suite)
	src := filepath.Join(root, "opt/coibox")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, time.Minute, "cp", "../../install.sh", filepath.Join(src, "install.sh"))
	must(t, time.Minute, "cp", coiboxBin, filepath.Join(src, "coibox"))

	m, booted, why := boot(t, root)
	if !booted {
		t.Logf("cannot boot the root under systemd-nspawn here (%s); testing in a chroot without starting the service", strings.TrimSpace(why))
		m = &machine{root: root}
	} else {
		defer m.stop()
	}
	var env []string
	if !m.booted {
		env = []string{"COIBOX_NO_START=1"}
	}

	start := time.Now()
	out := m.must(t, env, "sh /opt/coibox/install.sh admin@example.org --tls selfsigned --no-checks")
	t.Logf("first install took %v (booted: %v)\n%s", time.Since(start).Round(time.Millisecond), m.booted, out)
	for _, want := range []string{"added domain example.org", "added account admin@example.org", "password: "} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q", want)
		}
	}
	// Users, modes, the unit.
	stat := m.must(t, nil, "stat -c '%n %a %U:%G' /etc/coibox /etc/coibox/coibox.toml /var/lib/coibox /usr/local/bin/coibox /etc/systemd/system/coibox.service")
	for _, want := range []string{
		"/etc/coibox 750 root:coibox", "/etc/coibox/coibox.toml 640 root:coibox", "/var/lib/coibox 750 coibox:coibox",
		"/usr/local/bin/coibox 755 root:root", "/etc/systemd/system/coibox.service 644 root:root",
	} {
		if !strings.Contains(stat, want) {
			t.Errorf("want %q in\n%s", want, stat)
		}
	}
	if verify, err := m.exec(t, nil, "systemd-analyze verify /etc/systemd/system/coibox.service 2>&1"); err != nil || strings.Contains(verify, "coibox.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, verify)
	}
	m.must(t, nil, "runuser -u coibox -- coibox --config /etc/coibox/coibox.toml verify")

	if m.booted {
		if s := strings.TrimSpace(m.must(t, nil, "systemctl is-active coibox")); s != "active" {
			t.Fatalf("coibox.service is %s", s)
		}
		if h := m.must(t, nil, "coibox --config /etc/coibox/coibox.toml health"); h != "ok\n" {
			t.Errorf("health: %q", h)
		}
		// Run as the coibox user, holding only the capability to bind low ports.
		proc := m.must(t, nil, "pid=$(systemctl show -p MainPID --value coibox); stat -c '%U' /proc/$pid; grep -E '^Cap(Eff|Amb):' /proc/$pid/status")
		if !strings.HasPrefix(proc, "coibox\n") || !strings.Contains(proc, "CapEff:\t0000000000000400") {
			t.Errorf("the service's process:\n%s", proc)
		}
	}

	// Upgrade in place: a backup first, then the new binary, healthy.
	newBin := filepath.Join(t.TempDir(), "coibox")
	if err := testutil.Build(newBin, "../../cmd/coibox", "-ldflags", "-X main.version=v9.9.9-upgrade"); err != nil {
		t.Fatal(err)
	}
	must(t, time.Minute, "cp", newBin, filepath.Join(src, "coibox"))
	start = time.Now()
	out = m.must(t, env, "sh /opt/coibox/install.sh")
	t.Logf("upgrade took %v\n%s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "backing up to /var/backups/coibox/") || !strings.Contains(out, "v9.9.9-upgrade") {
		t.Errorf("upgrade output:\n%s", out)
	}
	if v := m.must(t, nil, "coibox version"); !strings.Contains(v, "v9.9.9-upgrade") {
		t.Errorf("after the upgrade: %s", v)
	}
	if b := m.must(t, nil, "ls /var/backups/coibox/*/"); !strings.Contains(b, "coibox.db") {
		t.Errorf("backup holds:\n%s", b)
	}
	if m.booted {
		if o, err := m.exec(t, nil, "test -e /usr/local/bin/coibox.prev"); err == nil {
			t.Errorf("coibox.prev left after a healthy upgrade: %s", o)
		}

		// A broken upgrade: it runs `version` but cannot serve; install.sh rolls back.
		broken := "#!/bin/sh\n[ \"$1\" = version ] && { echo 'coibox v0-broken'; exit 0; }\nexit 1\n"
		if err := os.WriteFile(filepath.Join(src, "coibox"), []byte(broken), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := m.exec(t, nil, "sh /opt/coibox/install.sh")
		if err == nil || !strings.Contains(out, "rolled back to the previous binary, which is running again") {
			t.Errorf("broken upgrade: %v\n%s", err, out)
		}
		if v := m.must(t, nil, "coibox version"); !strings.Contains(v, "v9.9.9-upgrade") {
			t.Errorf("after the rollback: %s", v)
		}
		if h := m.must(t, nil, "coibox --config /etc/coibox/coibox.toml health"); h != "ok\n" {
			t.Errorf("health after the rollback: %q", h)
		}
	}

	// Uninstall keeps the data; --purge removes it and the user.
	m.must(t, env, "sh /opt/coibox/install.sh --uninstall")
	if o, err := m.exec(t, nil, "test ! -e /usr/local/bin/coibox && test ! -e /etc/systemd/system/coibox.service && test -f /var/lib/coibox/coibox.db && test -f /etc/coibox/coibox.toml"); err != nil {
		t.Errorf("after --uninstall: %v %s", err, o)
	}
	m.must(t, env, "sh /opt/coibox/install.sh --uninstall --purge")
	if o, err := m.exec(t, nil, "test ! -e /var/lib/coibox && test ! -e /etc/coibox && test ! -e /var/backups/coibox && ! id coibox"); err != nil {
		t.Errorf("after --purge: %v %s", err, o)
	}
}

// TestShellcheck: install.sh is POSIX sh and shellcheck-clean.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		if os.Getenv("COIBOX_ROOT_TESTS") != "1" {
			t.Skip("shellcheck is not installed (CI installs it)")
		}
		t.Fatal("shellcheck is not installed")
	}
	if out, err := run(t, time.Minute, "shellcheck", "--shell=sh", "../../install.sh"); err != nil {
		t.Errorf("shellcheck install.sh: %v\n%s", err, out)
	}
}
