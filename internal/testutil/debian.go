package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DebianTool returns the path of command, installing Debian's package pkg with
// apt-get when the command is missing and the test runs as root (CI). Elsewhere a
// missing tool skips the test; with COIBOX_ROOT_TESTS=1 (CI) it fails it, and
// COIBOX_NO_INSTALL=1 forbids installing.
func DebianTool(t testing.TB, command, pkg string) string {
	t.Helper()
	find := func() string {
		if p, err := exec.LookPath(command); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(dir, command); isExecutable(p) {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	if os.Geteuid() != 0 || os.Getenv("COIBOX_NO_INSTALL") == "1" {
		if os.Getenv("COIBOX_ROOT_TESTS") == "1" {
			t.Fatalf("%s is not installed (Debian package %s)", command, pkg)
		}
		t.Skipf("%s is not installed (Debian package %s; CI installs it)", command, pkg)
	}
	if out, err := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", pkg).CombinedOutput(); err != nil {
		t.Fatalf("install %s: %v\n%s", pkg, err, out)
	}
	p := find()
	if p == "" {
		t.Fatalf("%s installed, but there is no %s", pkg, command)
	}
	return p
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
