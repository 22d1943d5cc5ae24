package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/miekg/dns"
)

// postfix is a private Postfix instance: its own configuration, queue and data
// directories, its smtpd on ipPostfix at the cluster's SMTP port, p.test delivered to
// Maildirs, and a.test relayed to coibox a without DNS (a transport map).
type postfix struct {
	dir  string // everything lives here
	conf string // config_directory
	mail string // virtual_mailbox_base
}

// postfixMaster lists only the services this instance needs. Nothing runs chrooted,
// so that no copies of /etc files are needed under the queue directory.
const postfixMaster = `%s:%d inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix configures and starts the instance, or skips the test saying what is
// missing. It is stopped when the test ends.
func startPostfix(t *testing.T, c *cluster) *postfix {
	t.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
			t.Skip("postfix is not installed (Debian: apt-get install postfix); skipping the Postfix peer")
		}
		bin = "/usr/sbin/postfix"
	}
	if os.Geteuid() != 0 {
		t.Skip("Postfix's master process must be started as root; skipping the Postfix peer")
	}
	owner, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix user (the Debian package creates it): %v", err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody for Maildir delivery: %v", err)
	}

	// Not t.TempDir: its parents are private to root, and Postfix's unprivileged
	// processes must reach the queue.
	dir, err := os.MkdirTemp("", "coibox-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &postfix{dir: dir, conf: filepath.Join(dir, "etc"), mail: filepath.Join(dir, "mail")}
	chown := func(path string, u *user.User) {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{p.conf, filepath.Join(dir, "spool"), filepath.Join(dir, "data"), p.mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(filepath.Join(dir, "data"), owner)
	chown(p.mail, nobody)

	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = mx.p.test
mydomain = p.test
myorigin = p.test
mydestination =
# inet_interfaces must name addresses the kernel lists on an interface, which
# 127.0.0.5 is not; smtpd's address comes from master.cf instead.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_bind_address = %[2]s
smtp_dns_support_level = disabled
smtp_tls_security_level = may
transport_maps = inline:{ a.test=smtp:[%[3]s]:%[4]d }
relay_domains =
virtual_mailbox_domains = p.test
virtual_mailbox_base = %[5]s
virtual_mailbox_maps = inline:{ pu@p.test=pu/ }
virtual_uid_maps = static:%[6]s
virtual_gid_maps = static:%[7]s
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, dir, ipPostfix, ipA, c.smtpPort, p.mail, nobody.Uid, nobody.Gid)
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), fmt.Appendf(nil, postfixMaster, ipPostfix, c.smtpPort), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(verb string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-c", p.conf, verb).CombinedOutput()
		if err != nil {
			return fmt.Errorf("postfix %s: %v\n%s\nmaillog:\n%s", verb, err, out, p.log())
		}
		return nil
	}
	if err := run("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("stop"); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("postfix maillog:\n%s", testutil.Tail(p.log(), 60))
		}
	})
	testutil.WaitListening(t, fmt.Sprintf("%s:%d", ipPostfix, c.smtpPort), 20*time.Second)

	c.dns.Add(fmt.Sprintf("p.test. 300 IN MX 10 mx.p.test.\nmx.p.test. 300 IN A %s\np.test. 300 IN TXT \"v=spf1 ip4:%s -all\"", ipPostfix, ipPostfix))
	return p
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// waitMaildir returns the path of the message with Message-ID id delivered to user's
// Maildir.
func (p *postfix) waitMaildir(t *testing.T, user, id string, timeout time.Duration) string {
	t.Helper()
	dir := filepath.Join(p.mail, user, "new")
	for deadline := time.Now().Add(timeout); ; {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				if m, err := mail.ReadMessage(bytes.NewReader(b)); err == nil && m.Header.Get("Message-Id") == "<"+id+">" {
					return f
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix: no message %s in %s after %v; maillog:\n%s", id, dir, timeout, testutil.Tail(p.log(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dkimPython finds a python3 with dkimpy and PyNaCl (for ed25519), or "".
func dkimPython() string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import dkim, nacl").Run() == nil {
			return py
		}
	}
	return ""
}

// txtRecords returns the TXT records in zone-file text as name → joined value.
func txtRecords(t *testing.T, zone string) map[string]string {
	t.Helper()
	out := map[string]string{}
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "coibox dns")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if txt, isTXT := rr.(*dns.TXT); isTXT {
			out[txt.Hdr.Name] = strings.Join(txt.Txt, "")
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse coibox dns output: %v", err)
	}
	return out
}

// testPostfix runs Postfix as a third peer: it receives coibox's signed mail, whose
// signatures dkimpy must verify, and relays mail to coibox.
func testPostfix(t *testing.T, c *cluster, a *peer) {
	pf := startPostfix(t, c)

	t.Run("coibox to postfix, DKIM verified by dkimpy", func(t *testing.T) {
		const id = "fed-postfix@a.test"
		if r := a.submit(t, "alice@a.test", []string{"pu@p.test"}, message("alice@a.test", "pu@p.test", "to postfix", id)); r.Code != 250 {
			t.Fatalf("submission: %v", r)
		}
		file := pf.waitMaildir(t, "pu", id, deliveryTimeout)
		if clients := grep(pf.log(), "client="); !strings.Contains(clients, "["+ipA+"]") {
			t.Errorf("postfix did not receive the message from %s (queue.source_ip):\n%s", ipA, clients)
		}
		py := dkimPython()
		if py == "" {
			t.Skip("python3 with dkimpy and PyNaCl missing (Debian: apt-get install python3-dkim python3-nacl); signatures not verified")
		}
		records := filepath.Join(t.TempDir(), "records.json")
		data, err := json.Marshal(txtRecords(t, a.mustAdmin(t, "", "dns", "a.test").Stdout))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(records, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "testdata/dkimverify.py", records, file).CombinedOutput()
		t.Logf("dkimpy:\n%s", out)
		if err != nil {
			raw, _ := os.ReadFile(file)
			t.Fatalf("dkimpy: %v\nmessage as Postfix stored it:\n%s", err, raw)
		}
		for _, want := range []string{"a=ed25519-sha256 d=a.test", "a=rsa-sha256 d=a.test"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no verified signature with %s", want)
			}
		}
	})

	t.Run("postfix to coibox", func(t *testing.T) {
		const id = "fed-from-postfix@p.test"
		cl, greet, err := testutil.DialSMTP(t.Context(), fmt.Sprintf("%s:%d", ipPostfix, c.smtpPort), testutil.SMTPDialOptions{Timeout: 20 * time.Second})
		if err != nil || greet.Code != 220 {
			t.Fatalf("connect to postfix: %v %v", greet, err)
		}
		defer cl.Close()
		if r, err := cl.Hello("client.p.test"); err != nil || r.Code != 250 {
			t.Fatalf("EHLO: %v %v", r, err)
		}
		if r, err := cl.Send("pu@p.test", []string{"alice@a.test"}, message("pu@p.test", "alice@a.test", "from postfix", id)); err != nil || r.Code != 250 {
			t.Fatalf("postfix refused the message: %v %v", r, err)
		}
		_ = cl.Quit()
		raw := a.waitFor(t, "alice@a.test", deliveryTimeout, "message "+id+" relayed by Postfix", byMessageID(id))
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		// Postfix connected from its own address, whose SPF record a checked.
		ar := m.Header.Get("Authentication-Results")
		for _, want := range []string{"spf=pass", "smtp.mailfrom=pu@p.test"} {
			if !strings.Contains(ar, want) {
				t.Errorf("Authentication-Results %q lacks %s", ar, want)
			}
		}
	})
}
