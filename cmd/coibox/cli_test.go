package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/store"
)

// coiboxBin is the binary TestMain builds once for every test that runs it.
var coiboxBin string

func TestMain(m *testing.M) { os.Exit(testutil.MainWithBinary(m, ".", &coiboxBin)) }

// result is what one run of the binary produced.
type result struct {
	code           int
	stdout, stderr string
}

// coibox runs the binary in dir (the test's temp dir if "") with stdin.
func coibox(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, coiboxBin, args...)
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run coibox %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// step is one command of a scripted session and what it must produce.
type step struct {
	name       string
	args       []string
	stdin      string
	wantCode   int
	wantStdout []string // substrings, or regexps when they start with "re:"
	wantStderr []string
	notStdout  []string
}

func (s step) check(t *testing.T, r result) {
	t.Helper()
	if r.code != s.wantCode {
		t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, s.wantCode, r.stdout, r.stderr)
	}
	match := func(where, text string, wants []string, want bool) {
		for _, w := range wants {
			var ok bool
			if re, isRE := strings.CutPrefix(w, "re:"); isRE {
				ok = regexp.MustCompile(re).MatchString(text)
			} else {
				ok = strings.Contains(text, w)
			}
			if ok != want {
				t.Errorf("%s contains %q: %v, want %v\n%s: %s", where, w, ok, want, where, text)
			}
		}
	}
	match("stdout", r.stdout, s.wantStdout, true)
	match("stderr", r.stderr, s.wantStderr, true)
	match("stdout", r.stdout, s.notStdout, false)
	if r.code != 0 && strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n") > 0 && s.wantCode == 1 {
		t.Errorf("error message is not one line: %q", r.stderr)
	}
}

func runSteps(t *testing.T, dir string, steps []step) {
	t.Helper()
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.check(t, coibox(t, dir, s.stdin, s.args...)) }) {
			// Later steps build on earlier ones; their failures would only be noise.
			t.FailNow()
		}
	}
}

func TestAdminCommands(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	generated := `re:password: [a-zA-Z0-9]{20}\n`
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "Example.ORG", "--config", cfg}, wantStdout: []string{"added domain example.org",
			`re:\._domainkey\.example\.org\. 3600 IN TXT "v=DKIM1; k=ed25519; p=`, `re:\._domainkey\.example\.org\. 3600 IN TXT "v=DKIM1; k=rsa; p=`}},
		{name: "dns", args: []string{"dns", "example.org", c}, wantStdout: []string{
			"example.org. 3600 IN MX 10 localhost.",
			`example.org. 3600 IN TXT "v=spf1 mx -all"`,
			`_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`,
			`._domainkey.example.org. 3600 IN TXT "v=DKIM1; k=ed25519; p=`,
			`re:_mta-sts\.example\.org\. 3600 IN TXT "v=STSv1; id=[0-9a-f]{20}"`,
			"mta-sts.example.org. 3600 IN CNAME localhost.",
		}},
		{name: "dns, unknown domain", args: []string{"dns", "nope.example", c}, wantCode: 1, wantStderr: []string{"nope.example does not exist"}},
		{name: "domain add again", args: []string{"--config", cfg, "domain", "add", "example.org"}, wantCode: 1, wantStderr: []string{"example.org already exists"}},
		{name: "domain add chatmail", args: []string{"domain", "add", "--chatmail", "chat.example", c}, wantStdout: []string{"added chatmail domain chat.example"}},
		{name: "account add, password from stdin", args: []string{"account", "add", "alice@example.org", c}, stdin: "pw one, long\n", wantStdout: []string{"added account alice@example.org"}, notStdout: []string{"password:"}},
		{name: "account add, generated password", args: []string{"account", "add", c, "Bob@Example.org"}, wantStdout: []string{"added account bob@example.org", generated}},
		{name: "account add, CRLF line", args: []string{c, "account", "add", "carol@chat.example"}, stdin: "pw three, long\r\n", notStdout: []string{"password:"}},
		{name: "account add twice", args: []string{"account", "add", "alice@example.org", c}, stdin: "long enough\n", wantCode: 1, wantStderr: []string{"alice@example.org already exists"}},
		{name: "account add, domain not served", args: []string{"account", "add", "dave@elsewhere.example", c}, stdin: "long enough\n", wantCode: 1, wantStderr: []string{"domain elsewhere.example is not served here; add it first with: coibox domain add elsewhere.example"}},
		{name: "account add, two lines on stdin", args: []string{"account", "add", "erin@example.org", c}, stdin: "a\nb\n", wantCode: 1, wantStderr: []string{"expected exactly one line"}},
		{name: "account add, not an address", args: []string{"account", "add", "erin", c}, wantCode: 2, wantStderr: []string{"not an address", "usage: coibox"}},
		{name: "account add, missing address", args: []string{"account", "add", c}, wantCode: 2, wantStderr: []string{"account add: missing argument", "usage:"}},
		{name: "account add, extra argument", args: []string{"account", "add", "a@example.org", "b@example.org", c}, wantCode: 2, wantStderr: []string{`unexpected argument "b@example.org"`}},
		{name: "account list", args: []string{"account", "list", c}, wantStdout: []string{"ADDRESS", "alice@example.org", "bob@example.org", "carol@chat.example", "never"}},
		{name: "account passwd", args: []string{"account", "passwd", "alice@example.org", c}, stdin: "pw two, long", wantStdout: []string{"changed the password of alice@example.org"}, notStdout: []string{"password:"}},
		{name: "account passwd, unknown", args: []string{"account", "passwd", "nobody@example.org", c}, stdin: "long enough", wantCode: 1, wantStderr: []string{"nobody@example.org does not exist"}},
		{name: "alias add", args: []string{"alias", "add", "team@example.org", "alice@example.org", c}, wantStdout: []string{"added alias team@example.org → alice@example.org"}},
		{name: "alias add second destination", args: []string{"alias", "add", "team@example.org", "bob@example.org", c}},
		{name: "alias add catch-all", args: []string{"alias", "add", "@example.org", "bob@example.org", c}, wantStdout: []string{"added catch-all", "example.org goes to bob@example.org"}},
		{name: "alias add on an account", args: []string{"alias", "add", "alice@example.org", "bob@example.org", c}, wantCode: 1, wantStderr: []string{"already exists"}},
		{name: "alias add, domain not served", args: []string{"alias", "add", "x@elsewhere.example", "bob@example.org", c}, wantCode: 1, wantStderr: []string{"domain elsewhere.example is not served here"}},
		{name: "alias list", args: []string{"alias", "list", c}, wantStdout: []string{"@example.org", "team@example.org  alice@example.org", "team@example.org  bob@example.org"}},
		{name: "alias del one destination", args: []string{"alias", "del", "team@example.org", "bob@example.org", c}, wantStdout: []string{"deleted alias team@example.org → bob@example.org"}},
		{name: "alias del unknown", args: []string{"alias", "del", "nope@example.org", c}, wantCode: 1, wantStderr: []string{"no alias nope@example.org"}},
		{name: "domain del refuses with accounts", args: []string{"domain", "del", "example.org", c}, wantCode: 1, wantStderr: []string{"domain example.org still has accounts", "--force"}},
		{name: "domain list", args: []string{"domain", "list", c}, wantStdout: []string{"re:chat.example +1 +yes", "re:example.org +2 +no"}},
		{name: "account del", args: []string{"account", "del", "bob@example.org", c}, wantStdout: []string{"deleted account bob@example.org"}},
		{name: "account del unknown", args: []string{"account", "del", "bob@example.org", c}, wantCode: 1, wantStderr: []string{"bob@example.org does not exist"}},
		{name: "verify clean", args: []string{"verify", c}, wantStdout: []string{"store is consistent: 2 accounts, 0 messages"}},
		{name: "domain del --force", args: []string{"domain", "del", "--force", "example.org", c}, wantStdout: []string{"deleted domain example.org"}},
		{name: "--force only with del", args: []string{"domain", "add", "--force", "x.example", c}, wantCode: 2, wantStderr: []string{"--force only goes with domain del"}},
		{name: "account list after force", args: []string{"account", "list", c}, wantStdout: []string{"carol@chat.example"}, notStdout: []string{"alice@"}},
		{name: "alias list after force", args: []string{"alias", "list", c}, notStdout: []string{"example.org"}},
	})

	// The passwords read from stdin are exactly the line, without its line ending.
	s, err := store.Open(t.Context(), dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		addr, password string
		ok             bool
	}{
		{"carol@chat.example", "pw three, long", true},
		{"carol@chat.example", "pw three, long\r", false},
		{"carol@chat.example", "pw three, long\r\n", false},
	} {
		_, err := s.Authenticate(t.Context(), tc.addr, tc.password)
		if (err == nil) != tc.ok {
			t.Errorf("Authenticate(%s, %q) = %v, want ok=%v", tc.addr, tc.password, err, tc.ok)
		}
	}
}

// TestPasswords follows an account's password through add and passwd, checking it by
// logging in through the store.
func TestPasswords(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	if r := coibox(t, "", "", "domain", "add", "example.org", "--config", cfg); r.code != 0 {
		t.Fatalf("domain add: %+v", r)
	}
	r := coibox(t, "", "", "account", "add", "gen@example.org", "--config", cfg)
	m := regexp.MustCompile(`password: (\S+)\n`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("account add with empty stdin: %+v", r)
	}
	genPW := m[1]
	if r := coibox(t, "", " spaces kept \n", "account", "add", "stdin@example.org", "--config", cfg); r.code != 0 {
		t.Fatalf("account add: %+v", r)
	}
	if r := coibox(t, "", "new secret\n", "account", "passwd", "gen@example.org", "--config", cfg); r.code != 0 {
		t.Fatalf("account passwd: %+v", r)
	}
	s, err := store.Open(t.Context(), dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		addr, password string
		ok             bool
	}{
		{"stdin@example.org", " spaces kept ", true},
		{"stdin@example.org", "spaces kept", false},
		{"gen@example.org", "new secret", true},
		{"gen@example.org", genPW, false},
	} {
		_, err := s.Authenticate(t.Context(), tc.addr, tc.password)
		if (err == nil) != tc.ok {
			t.Errorf("Authenticate(%s, %q) = %v, want ok=%v", tc.addr, tc.password, err, tc.ok)
		}
	}
}

// TestConfigFlagPositions runs the same command with --config in every accepted place.
func TestConfigFlagPositions(t *testing.T) {
	cfg, _, _ := testutil.ServerConfig(t, "")
	if r := coibox(t, "", "", "domain", "add", "example.org", "--config", cfg); r.code != 0 {
		t.Fatalf("domain add: %+v", r)
	}
	for _, args := range [][]string{
		{"--config", cfg, "domain", "list"},
		{"--config=" + cfg, "domain", "list"},
		{"-config", cfg, "domain", "list"},
		{"domain", "list", "--config", cfg},
		{"domain", "list", "--config=" + cfg},
		{"domain", "--config", cfg, "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			step{args: args, wantStdout: []string{"example.org"}}.check(t, coibox(t, "", "", args...))
		})
	}
}

// TestConfigResolution checks where a command finds its configuration when --config is
// not given: ./coibox.toml, else the local profile, which serves localhost from the
// start.
func TestConfigResolution(t *testing.T) {
	t.Run("local profile", func(t *testing.T) {
		dir := t.TempDir()
		runSteps(t, dir, []step{
			{name: "account add", args: []string{"account", "add", "you@localhost"}, wantStdout: []string{"added account you@localhost", "password: "}},
			{name: "domain list", args: []string{"domain", "list"}, wantStdout: []string{"localhost  1"}},
		})
		if _, err := os.Stat(filepath.Join(dir, "coibox-data", store.DBFile)); err != nil {
			t.Errorf("local profile data: %v", err)
		}
	})
	t.Run("coibox.toml in the working directory", func(t *testing.T) {
		dir := t.TempDir()
		cfg, dataDir, _ := testutil.ServerConfig(t, "")
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "coibox.toml"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		runSteps(t, dir, []step{
			// No local profile: localhost is not served until added.
			{name: "account add", args: []string{"account", "add", "you@localhost"}, wantCode: 1, wantStderr: []string{"domain localhost is not served here"}},
			{name: "domain add", args: []string{"domain", "add", "example.org"}},
		})
		if _, err := os.Stat(filepath.Join(dataDir, store.DBFile)); err != nil {
			t.Errorf("config's data_dir not used: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "coibox-data")); err == nil {
			t.Errorf("local profile's data dir created although coibox.toml exists")
		}
	})
}

func TestUsageAndErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("hostname = \"localhost\"\nlisten_smtp = \":25\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []step{
		{name: "no command", wantCode: 2, wantStderr: []string{"no command given", "usage: coibox"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`, "usage: coibox"}},
		{name: "unknown subcommand", args: []string{"account", "frob"}, wantCode: 2, wantStderr: []string{`account: unknown subcommand "frob"`}},
		{name: "missing subcommand", args: []string{"alias"}, wantCode: 2, wantStderr: []string{"alias: missing subcommand"}},
		{name: "unknown flag", args: []string{"account", "list", "--frob"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -frob"}},
		{name: "flag without value", args: []string{"account", "list", "--config"}, wantCode: 2, wantStderr: []string{"flag needs an argument: -config"}},
		{name: "bad log format", args: []string{"serve", "--log-format", "xml", "--config", bad}, wantCode: 2, wantStderr: []string{`--log-format "xml" is not text or json`}},
		{name: "help", args: []string{"help"}, wantStdout: []string{"usage: coibox", "account add ADDRESS"}},
		{name: "-h", args: []string{"-h"}, wantStdout: []string{"usage: coibox"}},
		{name: "subcommand -h", args: []string{"account", "-h"}, wantStdout: []string{"usage: coibox [--config FILE] account ...", "account passwd ADDRESS", "account list"},
			notStdout: []string{"domain add", "serve"}},
		{name: "help of a command", args: []string{"help", "quickstart"}, wantStdout: []string{"quickstart ADDRESS", "--tls acme|selfsigned", "coibox help lists every command"},
			notStdout: []string{"account add"}},
		{name: "--help after arguments", args: []string{"queue", "show", "7", "--help"}, wantStdout: []string{"queue list", "queue retry ID"}, notStdout: []string{"alias"}},
		{name: "usage error shows the command's usage", args: []string{"dns"}, wantCode: 2, wantStderr: []string{"dns: missing argument", "dns check DOMAIN"}},
		{name: "version", args: []string{"version"}, wantStdout: []string{"re:^coibox \\S+ \\(go1"}},
		{name: "missing config file", args: []string{"account", "list", "--config", "/nonexistent/coibox.toml"}, wantCode: 1, wantStderr: []string{"read config", "/nonexistent/coibox.toml"}},
		{name: "bad config file", args: []string{"account", "list", "--config", bad}, wantCode: 1, wantStderr: []string{`unknown key "listen_smtp"`}},
		{name: "backup without dir", args: []string{"backup"}, wantCode: 2, wantStderr: []string{"backup: missing argument"}},
	} {
		t.Run(s.name, func(t *testing.T) { s.check(t, coibox(t, "", "", s.args...)) })
	}
}

func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "coibox")
	if err := testutil.Build(bin, ".", "-ldflags=-X main.version=v1.2.3-test"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "coibox v1.2.3-test (") {
		t.Errorf("version = %q", out)
	}
}

// TestVerifyFindsCorruption changes a mailbox counter behind the store's back, as a bug
// or a hand edit could, and expects verify to fail with a report naming it.
func TestVerifyFindsCorruption(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "example.org", c}},
		{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "pw, long enough\n"},
		{name: "verify clean", args: []string{"verify", c}, wantStdout: []string{"store is consistent: 1 accounts, 0 messages"}},
	})
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, store.DBFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE mailboxes SET msg_count = 7 WHERE name = 'INBOX'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	runSteps(t, "", []step{
		{name: "verify corrupted", args: []string{"verify", c}, wantCode: 1,
			wantStdout: []string{"has 2 problems:", "- mailbox counters: alice@example.org: INBOX: count 7/0", "- account usage: alice@example.org: bytes 0/0, messages 0/7"},
			wantStderr: []string{"verify: 2 problems found"}},
	})
}

func TestBackup(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	runSteps(t, "", []step{
		{name: "domain add", args: []string{"domain", "add", "example.org", c}},
		{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "pw, long enough\n"},
	})
	// A stand-in for the certificate folder, with a private key's mode; domain add
	// made the DKIM keys, the domain's and the hostname's (for bounces): 3 files each.
	for _, f := range []string{"tls/key.pem"} {
		p := filepath.Join(dataDir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("secret "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "backup")
	runSteps(t, "", []step{
		{name: "backup", args: []string{"backup", dst, c}, wantStdout: []string{
			"wrote " + filepath.Join(dst, store.DBFile), "wrote " + filepath.Join(dst, "tls") + " (1 files)", "wrote " + filepath.Join(dst, "dkim") + " (6 files)"}},
		{name: "backup again refuses", args: []string{"backup", dst, c}, wantCode: 1, wantStderr: []string{"exists; choose an empty directory"}},
		{name: "backup into the data dir refuses", args: []string{"backup", filepath.Join(dataDir, "bk"), c}, wantCode: 1, wantStderr: []string{"inside the data directory"}},
	})
	for _, f := range []string{"tls/key.pem", "dkim/example.org/rsa.key", "dkim/example.org/ed25519.key"} {
		fi, err := os.Stat(filepath.Join(dst, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// The copy is a working store.
	s, err := store.Open(t.Context(), dst, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Authenticate(t.Context(), "alice@example.org", "pw, long enough"); err != nil {
		t.Errorf("log in on the backup: %v", err)
	}
}
