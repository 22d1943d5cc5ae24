package release

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"crypto/tls"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

// version is what the test stamps into the release binaries.
const version = "v0.0.0-releasetest"

// domain is the mail domain each smoke-tested server serves.
const domain = "release.test"

// target is one arch scripts/release builds, and how this amd64 host runs its binary.
type target struct {
	arch    string // scripts/release's name for it
	goarch  string // runtime.GOARCH of the binary
	machine elf.Machine
	cc      string   // the C compiler scripts/release uses
	headers string   // a libc header the compiler needs
	pkgs    []string // Debian packages for cc and headers
	// qemu is the qemu-user emulator that runs the binary, with its sysroot (-L); empty
	// for the native build.
	qemu, sysroot string
}

var targets = []target{
	{arch: "amd64", goarch: "amd64", machine: elf.EM_X86_64, cc: "gcc", headers: "/usr/include/stdio.h",
		pkgs: []string{"gcc", "libc6-dev"}},
	{arch: "arm64", goarch: "arm64", machine: elf.EM_AARCH64, cc: "aarch64-linux-gnu-gcc",
		headers: "/usr/aarch64-linux-gnu/include/stdio.h", pkgs: []string{"gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"},
		qemu: "qemu-aarch64", sysroot: "/usr/aarch64-linux-gnu"},
	{arch: "armv7", goarch: "arm", machine: elf.EM_ARM, cc: "arm-linux-gnueabihf-gcc",
		headers: "/usr/arm-linux-gnueabihf/include/stdio.h", pkgs: []string{"gcc-arm-linux-gnueabihf", "libc6-dev-armhf-cross"},
		qemu: "qemu-arm", sysroot: "/usr/arm-linux-gnueabihf"},
}

// qemuPackage provides qemu-aarch64 and qemu-arm (user-mode emulation, no binfmt needed:
// the test calls the emulator explicitly).
const qemuPackage = "qemu-user"

// figures are what the test measured for one arch, for the README.
type figures struct {
	arch, runBy        string
	binary, tarball    int64
	idleRSS, mailRSS   int64 // kB: idle after start, and after one message in and out
	listening, healthy time.Duration
}

// TestRelease runs scripts/release for every arch (or those in COIBOX_RELEASE_ARCHS),
// checks the tarballs against SHA256SUMS, then smoke-tests each binary as a server:
// natively for amd64, under qemu-user for arm64 and armv7.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three release binaries with cgo: not in -short mode")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("release builds are made on linux/amd64 (Debian's cross compilers), this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	want := selectTargets(t)

	// The script installs missing compilers itself, when it can; skip only when it cannot.
	var missing []string
	for _, tg := range want {
		if _, err := exec.LookPath(tg.cc); err != nil || !exists(tg.headers) {
			missing = append(missing, tg.pkgs...)
		}
	}
	if len(missing) > 0 {
		if why := cannotInstall(); why != "" {
			t.Skipf("compilers missing (Debian packages %s) and %s", strings.Join(missing, " "), why)
		}
	}

	out := t.TempDir()
	t.Logf("scripts/release %s (COIBOX_RELEASE_ARCHS=%q) into %s", version, archNames(want), out)
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "scripts", "release"), version)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OUT="+out, "COIBOX_RELEASE_ARCHS="+archNames(want))
	started := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, b)
	}
	t.Logf("scripts/release took %v:\n%s", time.Since(started).Round(time.Second), b)

	sums := checkSums(t, out)
	hasInstall := exists(filepath.Join(root, "install.sh"))
	figs := make([]*figures, 0, len(want))
	for _, tg := range want {
		name := fmt.Sprintf("coibox-%s-linux-%s", version, tg.arch)
		if !sums[name+".tar.gz"] {
			t.Errorf("SHA256SUMS does not list %s.tar.gz", name)
		}
		if !strings.Contains(string(b), name+".tar.gz") {
			t.Errorf("scripts/release's size table does not name %s.tar.gz", name)
		}
		f := &figures{arch: tg.arch, runBy: "native"}
		if tg.qemu != "" {
			f.runBy = tg.qemu
		}
		figs = append(figs, f)
		t.Run(tg.arch, func(t *testing.T) {
			tarball := filepath.Join(out, name+".tar.gz")
			st, err := os.Stat(tarball)
			if err != nil {
				t.Fatal(err)
			}
			f.tarball = st.Size()
			dir := t.TempDir()
			files := extract(t, tarball, dir)
			wantFiles := []string{name + "/", name + "/README.md", name + "/coibox"}
			if hasInstall {
				wantFiles = append(wantFiles, name+"/install.sh")
			}
			for _, w := range wantFiles {
				if !files[w] {
					t.Errorf("%s lacks %s (has %v)", filepath.Base(tarball), w, keys(files))
				}
			}
			if len(files) != len(wantFiles) {
				t.Errorf("%s holds %v, want exactly %v", filepath.Base(tarball), keys(files), wantFiles)
			}
			bin := filepath.Join(dir, name, "coibox")
			f.binary = checkELF(t, bin, tg.machine)
			run := bin
			if tg.qemu != "" {
				run = qemuWrapper(t, tg, bin)
			}
			smokeTest(t, tg, run, f)
		})
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "release figures: coibox %s, %s, on this %d-core host; RSS is VmRSS (under\n", version, runtime.Version(), runtime.NumCPU())
	sb.WriteString("qemu that of the emulator, guest plus translation cache), idle 1s after /healthz is OK;\n")
	sb.WriteString("listening: from exec to the SMTP port accepting; healthy: to /healthz answering 200.\n\n")
	sb.WriteString("| arch | run by | binary (stripped) | tarball | idle RSS | RSS after 1 message | listening | healthy |\n")
	sb.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, f := range figs {
		if f.binary == 0 {
			continue
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f.arch, f.runBy, mib(f.binary), mib(f.tarball),
			kib(f.idleRSS), kib(f.mailRSS), dur(f.listening), dur(f.healthy))
	}
	t.Logf("\n%s", sb.String())
}

// selectTargets are the targets COIBOX_RELEASE_ARCHS names, all by default.
func selectTargets(t *testing.T) []target {
	env := strings.Fields(os.Getenv("COIBOX_RELEASE_ARCHS"))
	if len(env) == 0 {
		return targets
	}
	var out []target
	for _, a := range env {
		found := false
		for _, tg := range targets {
			if tg.arch == a {
				out = append(out, tg)
				found = true
			}
		}
		if !found {
			t.Fatalf("COIBOX_RELEASE_ARCHS: unknown arch %q", a)
		}
	}
	return out
}

func archNames(ts []target) string {
	names := make([]string, len(ts))
	for i, tg := range ts {
		names[i] = tg.arch
	}
	return strings.Join(names, " ")
}

// cannotInstall says why apt-get cannot install packages here, or "" if it can: as
// root, with apt-get, and unless COIBOX_NO_INSTALL=1 (as in scripts/test).
func cannotInstall() string {
	switch {
	case os.Getenv("COIBOX_NO_INSTALL") == "1":
		return "COIBOX_NO_INSTALL=1 forbids installing them"
	case os.Geteuid() != 0:
		return "installing them needs root"
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "apt-get is not available to install them"
	}
	return ""
}

// aptInstall installs Debian packages, as scripts/test does.
func aptInstall(t *testing.T, pkgs ...string) {
	t.Helper()
	t.Logf("installing %s", strings.Join(pkgs, " "))
	for _, args := range [][]string{
		{"-o", "DPkg::Lock::Timeout=600", "update", "-qq"},
		append([]string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends"}, pkgs...),
	} {
		cmd := exec.CommandContext(t.Context(), "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkSums reads dir/SHA256SUMS, checks every file it lists and returns their names.
func checkSums(t *testing.T, dir string) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS: malformed line %q", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("SHA256SUMS lists %s: %v", file, err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS: %s has sum %x, listed as %s", file, got, sum)
		}
		listed[file] = true
	}
	return listed
}

// extract unpacks a .tar.gz into dir and returns the names it held.
func extract(t *testing.T, tarball, dir string) map[string]bool {
	t.Helper()
	fh, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatalf("%s: %v", tarball, err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", tarball, err)
		}
		names[h.Name] = true
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d, want 0:0", filepath.Base(tarball), h.Name, h.Uid, h.Gid)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("%s: entry %q leaves the directory", tarball, h.Name)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s: %s is not a file or directory (type %c)", filepath.Base(tarball), h.Name, h.Typeflag)
		}
	}
	return names
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkELF checks that bin is a stripped, executable ELF file for machine and returns
// its size.
func checkELF(t *testing.T, bin string, machine elf.Machine) int64 {
	t.Helper()
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		t.Errorf("coibox in the tarball is not executable: %v", st.Mode())
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("coibox is not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("coibox is built for %v, want %v", f.Machine, machine)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("coibox is not stripped: it has %s", s)
		}
	}
	return st.Size()
}

// qemuWrapper writes a script that runs bin under the target's qemu-user emulator, so
// that testutil's helpers, which run a binary, run the emulated one. It execs qemu, so
// the process testutil starts (and measures) is the emulator. qemu-user is installed
// when missing and possible; otherwise the test is skipped.
func qemuWrapper(t *testing.T, tg target, bin string) string {
	t.Helper()
	qemu, err := exec.LookPath(tg.qemu)
	if err != nil {
		if why := cannotInstall(); why != "" {
			t.Skipf("%s missing (Debian package %s) and %s", tg.qemu, qemuPackage, why)
		}
		aptInstall(t, qemuPackage)
		if qemu, err = exec.LookPath(tg.qemu); err != nil {
			t.Fatalf("%s still missing after installing %s: %v", tg.qemu, qemuPackage, err)
		}
	}
	// The cross libc comes with the cross compiler scripts/release needed.
	if !exists(filepath.Join(tg.sysroot, "lib")) {
		t.Fatalf("%s/lib missing: the target's libc (libc6-*-cross, a dependency of %s) is not installed", tg.sysroot, tg.pkgs[0])
	}
	for _, p := range []string{qemu, tg.sysroot, bin} {
		if strings.ContainsRune(p, '\'') {
			t.Fatalf("path %q has a quote", p)
		}
	}
	w := filepath.Join(t.TempDir(), "coibox-"+tg.arch)
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' -L '%s' '%s' \"$@\"\n", qemu, tg.sysroot, bin)
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// smokeTest runs the binary (run: the binary itself, or its qemu wrapper) as a user
// would after unpacking a release: version, a domain and an account, serve, one message
// in over SMTP and out over IMAP, SIGTERM, verify. It fills in f's run-time figures.
func smokeTest(t *testing.T, tg target, run string, f *figures) {
	r := testutil.Run(t, run, "", "version")
	wantVersion := fmt.Sprintf("coibox %s (go", version)
	wantPlatform := fmt.Sprintf(" linux/%s)\n", tg.goarch)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, wantVersion) || !strings.HasSuffix(r.Stdout, wantPlatform) {
		t.Fatalf("coibox version: exit %d, stdout %q, stderr %q; want %q…%q", r.Code, r.Stdout, r.Stderr, wantVersion, wantPlatform)
	}
	t.Logf("coibox version: %s", strings.TrimSpace(r.Stdout))

	dns := dnstest.New(t) // knows no names: checks of the sender's domain are fast and offline
	cfg, _, l := testutil.ServerConfig(t, fmt.Sprintf("\n[dns]\nresolver = %q\n", dns.Addr()))
	const user, password = "alice@" + domain, "release test password"
	admin := func(stdin string, args ...string) testutil.Result {
		t.Helper()
		r := testutil.Run(t, run, stdin, append([]string{"--config", cfg}, args...)...)
		if r.Code != 0 {
			t.Fatalf("coibox %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		return r
	}
	admin("", "domain", "add", domain)
	admin(password+"\n", "account", "add", user)

	// Emulation is slow: give the server a generous minute to start.
	p, err := testutil.StartServerProc(t.Context(), run, cfg, []string{l.SMTP, l.Submission, l.Submissions, l.IMAP, l.IMAPS, l.HTTP}, time.Minute, nil)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			_ = p.Kill()
		}
		if t.Failed() {
			t.Logf("server output (tail):\n%s", testutil.Tail(p.Output(), 60))
		}
	})
	if err := p.WaitHealthy(t.Context(), "http://"+l.HTTP+"/healthz", time.Minute); err != nil {
		t.Fatalf("serve: %v", err)
	}
	f.listening, f.healthy = p.Listening, time.Since(p.Started)
	if tg.qemu != "" {
		// The wrapper exec'd the emulator: the measured process must be qemu itself.
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid())); err != nil || filepath.Base(exe) != tg.qemu {
			t.Fatalf("server process is %q (%v), want %s", exe, err, tg.qemu)
		}
	}
	time.Sleep(time.Second)
	f.idleRSS = rss(t, p.Pid())

	token := fmt.Sprintf("release-%s-%d", tg.arch, time.Now().UnixNano())
	sc, greet, err := testutil.DialSMTP(t.Context(), l.SMTP, testutil.SMTPDialOptions{})
	if err != nil || greet.Code != 220 {
		t.Fatalf("SMTP greeting: %v %v", greet, err)
	}
	if rep, err := sc.Hello("client.example"); err != nil || rep.Code != 250 {
		t.Fatalf("EHLO: %v %v", rep, err)
	}
	msg := fmt.Sprintf("From: <bob@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@sender.example>\r\n"+
		"Date: %s\r\n\r\nHello from the %s release build.\r\n", user, token, token, time.Now().Format(time.RFC1123Z), tg.arch)
	if rep, err := sc.Send("bob@sender.example", []string{user}, []byte(msg)); err != nil || rep.Code != 250 {
		t.Fatalf("SMTP send: %v %v", rep, err)
	}
	_ = sc.Quit()

	c, err := imapclient.DialTLS(l.IMAPS, &imapclient.Options{
		TLSConfig: &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}, //nolint:gosec // the server's self-signed certificate
	})
	if err != nil {
		t.Fatalf("IMAPS: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("IMAP SELECT: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		t.Fatalf("IMAP FETCH: %v (%d messages)", err, len(msgs))
	}
	if body := string(msgs[0].BodySection[0].Bytes); !strings.Contains(body, "Subject: "+token) || !strings.Contains(body, "Hello from the "+tg.arch) {
		t.Errorf("fetched message is not the one sent:\n%s", body)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("IMAP LOGOUT: %v", err)
	}
	f.mailRSS = rss(t, p.Pid())

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("serve after SIGTERM: exit %d, %v", code, err)
	}
	if r := admin("", "verify"); !strings.Contains(r.Stdout, "consistent") {
		t.Errorf("coibox verify printed %q, want a consistent store", r.Stdout)
	}
}

// rss is the resident set size of process pid in kB (VmRSS in /proc/pid/status).
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read RSS: %v", err)
	}
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(kb int64) string {
	if kb == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
