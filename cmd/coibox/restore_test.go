package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coibox/coibox/internal/testutil"
)

// TestBackupRestore: a backup taken while the server runs, put back with restore:
// refused while the server runs and, without --force, over an existing database;
// with --force the state at the backup is back (a later account gone, the message
// and the DKIM keys there) and what was replaced is kept aside.
func TestBackupRestore(t *testing.T) {
	cfg, dataDir, l := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	for _, args := range [][]string{{"domain", "add", "example.org"}, {"account", "add", "alice@example.org"}} {
		if r := coibox(t, "", "alice password\n", append(args, c)...); r.code != 0 {
			t.Fatalf("%v: %d %s", args, r.code, r.stderr)
		}
	}
	srv := startServer(t, cfg)
	sc := dialSMTP(t, l.SMTP, nil)
	expect(t, "send", 250)(sc.Send("bob@remote.example", []string{"alice@example.org"}, testMessage("bob@remote.example", "before the backup")))
	_ = sc.Quit()

	bk := filepath.Join(t.TempDir(), "bk")
	if r := coibox(t, "", "", c, "backup", bk); r.code != 0 {
		t.Fatalf("backup: %d %s", r.code, r.stderr)
	}
	if r := coibox(t, "", "", c, "restore", "--force", bk); r.code != 1 || !strings.Contains(r.stderr, "is in use by another coibox serve") {
		t.Errorf("restore while serving: %d %q", r.code, r.stderr)
	}
	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if r := coibox(t, "", "carol password\n", c, "account", "add", "carol@example.org"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	dkimBefore, err := os.ReadDir(filepath.Join(dataDir, "dkim", "example.org"))
	if err != nil || len(dkimBefore) == 0 {
		t.Fatalf("dkim keys: %v %v", dkimBefore, err)
	}

	if r := coibox(t, "", "", c, "restore", bk); r.code != 1 || !strings.Contains(r.stderr, "already holds a database; --force replaces it") {
		t.Errorf("restore without --force: %d %q", r.code, r.stderr)
	}
	if r := coibox(t, "", "", c, "restore", filepath.Join(t.TempDir(), "nothing")); r.code != 1 || !strings.Contains(r.stderr, "is not a backup made by coibox backup") {
		t.Errorf("restore of nothing: %d %q", r.code, r.stderr)
	}
	r := coibox(t, "", "", c, "restore", "--force", bk)
	if r.code != 0 || !strings.Contains(r.stdout, "moved the current state aside to "+filepath.Join(dataDir, "before-restore-")) ||
		!strings.Contains(r.stdout, "restored coibox.db") || !strings.Contains(r.stdout, "restored dkim") {
		t.Fatalf("restore --force: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if v := coibox(t, "", "", c, "verify"); v.code != 0 || !strings.Contains(v.stdout, "store is consistent: 1 accounts, 1 messages") {
		t.Errorf("verify after restore: %d %s %s", v.code, v.stdout, v.stderr)
	}
	if a := coibox(t, "", "", c, "account", "list"); !strings.Contains(a.stdout, "alice@example.org") || strings.Contains(a.stdout, "carol@") {
		t.Errorf("accounts after restore:\n%s", a.stdout)
	}
	for _, k := range dkimBefore {
		was, _ := os.ReadFile(filepath.Join(bk, "dkim", "example.org", k.Name()))
		now, err := os.ReadFile(filepath.Join(dataDir, "dkim", "example.org", k.Name()))
		if err != nil || string(was) != string(now) {
			t.Errorf("DKIM key %s not restored: %v", k.Name(), err)
		}
	}
	aside, _ := filepath.Glob(filepath.Join(dataDir, "before-restore-*", "coibox.db"))
	if len(aside) != 1 {
		t.Errorf("the replaced database is not kept aside: %v", aside)
	}
	// The server starts on the restored state.
	srv = startServer(t, cfg)
	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve on the restored state: exit %d", code)
	}
}
