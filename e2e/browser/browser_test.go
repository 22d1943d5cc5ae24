package browser

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

var coiboxBin string

func TestMain(m *testing.M) { os.Exit(testutil.MainWithBinary(m, "../../cmd/coibox", &coiboxBin)) }

// chromium is Debian's Chromium.
func chromium(t *testing.T) string { return testutil.DebianTool(t, "chromium", "chromium") }

// screenshots is where the pages' pictures go: $COIBOX_ARTIFACTS/screenshots, else a
// directory under the system's temporary one, which the test names in its log.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COIBOX_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "coibox-artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sizes are the widths every page is photographed at: a desktop and a phone.
var sizes = []struct {
	name          string
	width, height int64
	mobile        bool
}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}}

// shoot saves the current page at each size as NAME-SIZE.png.
func shoot(ctx context.Context, t *testing.T, dir, name string) {
	t.Helper()
	for _, s := range sizes {
		var opts []chromedp.EmulateViewportOption
		if s.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(s.width, s.height, opts...)); err != nil {
			t.Fatalf("viewport %s: %v", s.name, err)
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+s.name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = chromedp.Do(ctx, chromedp.EmulateReset())
}

// labelled checks that every visible form control of the page has a label naming it
// and can take the keyboard's focus.
func labelled(ctx context.Context, t *testing.T, page string) {
	t.Helper()
	js := `[...document.querySelectorAll('input:not([type=hidden]), button, select, textarea')]
		.filter(e => e.tabIndex < 0 || !(e.tagName === 'BUTTON' ? e.textContent.trim() : (e.labels && e.labels.length)))
		.map(e => e.outerHTML)`
	missing, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%s: controls without a label or out of the tab order: %q", page, missing)
	}
}

// step runs actions with a deadline of its own, so that a wait that never ends
// fails the step and leaves the browser usable for the failure report.
func step(ctx context.Context, actions ...chromedp.Action[chromedp.Void]) error {
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return chromedp.Do(sctx, actions...)
}

func text(ctx context.Context, t *testing.T) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAdminInChromium: first-run link → set the password → dashboard → log out →
// log in again with the keyboard only → add a domain → add an account, which logs
// in over IMAP with the password the page showed → a form on another site posting
// to the admin page is refused → three wrong passwords lock the address (the config
// allows three).
func TestAdminInChromium(t *testing.T) {
	bin := chromium(t)
	shots := screenshots(t)
	t.Logf("screenshots in %s", shots)

	// Outgoing mail goes to a relay that refuses connections: it stays queued.
	cfg, _, l := testutil.ServerConfig(t, "\n[limits]\nauth_failures_per_ip = 3\n\n[queue]\nsmarthost = \"127.0.0.1:1\"\nsmarthost_tls = \"none\"\n")
	for _, args := range [][]string{{"domain", "add", "example.org"}, {"account", "add", "carol@example.org"}} {
		if r := testutil.Run(t, coiboxBin, "carol's password\n", append([]string{"--config", cfg}, args...)...); r.Code != 0 {
			t.Fatal(r.Stderr)
		}
	}
	proc, err := testutil.StartServerProc(t.Context(), coiboxBin, cfg, []string{l.HTTP}, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = proc.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("server:\n%s", testutil.Tail(proc.Output(), 40))
		}
	})
	r := testutil.Run(t, coiboxBin, "", "--config", cfg, "admin", "setup-link")
	link := strings.TrimSpace(strings.SplitN(r.Stdout, "\n", 2)[0])
	if r.Code != 0 || !strings.HasPrefix(link, "http://"+l.HTTP+"/admin/setup?token=") {
		t.Fatalf("setup-link: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// The first action starts the browser, bound to the context it runs with: this
	// one, not a step's shorter one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	const password = "a long admin password"
	if err := step(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
		t.Fatal(err)
	}
	labelled(ctx, t, "setup")
	shoot(ctx, t, shots, "1-setup")
	if err := step(ctx,
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.SendKeys(chromedp.ID("confirm"), password),
		chromedp.Submit(chromedp.ID("confirm")),
		chromedp.WaitVisible("//h2[text()='Listeners']"),
	); err != nil {
		t.Fatalf("set the password: %v\n%s", err, text(ctx, t))
	}
	body := text(ctx, t)
	for _, want := range []string{l.SMTP, l.IMAPS, "coibox self-signed", "setup: admin password set"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, body)
		}
	}
	labelled(ctx, t, "dashboard")
	shoot(ctx, t, shots, "2-dashboard")

	// Log out, then in again with the keyboard alone: Tab to the field, type, Enter.
	if err := step(ctx,
		chromedp.Click("//button[text()='Log out']"),
		chromedp.WaitVisible(chromedp.ID("password")),
	); err != nil {
		t.Fatalf("log out: %v", err)
	}
	labelled(ctx, t, "login")
	shoot(ctx, t, shots, "3-login")
	if err := step(ctx,
		chromedp.Focus(chromedp.ID("password")),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible("//h2[text()='Audit log']"),
	); err != nil {
		t.Fatalf("log in by keyboard: %v\n%s", err, text(ctx, t))
	}
	if body := text(ctx, t); !strings.Contains(body, "logout") || !strings.Contains(body, "login") {
		t.Errorf("the audit log lacks the logout and login:\n%s", body)
	}

	// Add a domain and an account on the pages; the account logs in over IMAP with
	// the password the page showed.
	if err := step(ctx,
		chromedp.Click("//nav/a[text()='Domains']"),
		chromedp.WaitVisible(chromedp.ID("name")),
	); err != nil {
		t.Fatalf("domains page: %v", err)
	}
	labelled(ctx, t, "domains")
	shoot(ctx, t, shots, "7-domains")
	if err := step(ctx,
		chromedp.SendKeys(chromedp.ID("name"), "example.net"),
		chromedp.Submit(chromedp.ID("name")),
		chromedp.WaitVisible("//h2[text()='Added domain example.net']"),
	); err != nil {
		t.Fatalf("add domain: %v\n%s", err, text(ctx, t))
	}
	if body := text(ctx, t); !strings.Contains(body, "example.net. 3600 IN MX 10 localhost.") {
		t.Errorf("the added domain's records:\n%s", body)
	}
	shoot(ctx, t, shots, "8-domain-added")
	if err := step(ctx,
		chromedp.Click("//nav/a[text()='Accounts']"),
		chromedp.WaitVisible(chromedp.ID("address")),
		chromedp.SendKeys(chromedp.ID("address"), "bob@example.net"),
		chromedp.Submit(chromedp.ID("address")),
		chromedp.WaitVisible("//h2[text()='Added bob@example.net']"),
	); err != nil {
		t.Fatalf("add account: %v\n%s", err, text(ctx, t))
	}
	shoot(ctx, t, shots, "9-account-added")
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("pre.shown")))
	if err != nil {
		t.Fatal(err)
	}
	imapLogin(t, l.IMAPS, "bob@example.net", strings.TrimSpace(shown))
	if err := step(ctx, chromedp.Navigate("http://"+l.HTTP+"/admin/accounts"), chromedp.WaitVisible("//td[text()='bob@example.net']")); err != nil {
		t.Fatalf("the account is not listed: %v\n%s", err, text(ctx, t))
	}
	labelled(ctx, t, "accounts")
	shoot(ctx, t, shots, "10-accounts")

	// A message for elsewhere waits in the queue; Retry now hands it to the running
	// queue at once (a new attempt, which fails again against the refusing relay).
	sc, _, err := testutil.DialSMTP(t.Context(), l.Submissions, testutil.SMTPDialOptions{TLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if r, err := sc.AuthPlain("carol@example.org", "carol's password"); err != nil || r.Code != 235 {
		t.Fatalf("AUTH: %v %v", r, err)
	}
	msg := []byte("From: carol@example.org\r\nTo: dave@remote.example\r\nSubject: waiting in the queue\r\n\r\nhi\r\n")
	if r, err := sc.Send("carol@example.org", []string{"dave@remote.example"}, msg); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}
	sc.Close()
	if err := step(ctx,
		chromedp.Click("//nav/a[text()='Queue']"),
		chromedp.WaitVisible("//td[text()='dave@remote.example']"),
	); err != nil {
		t.Fatalf("queue page: %v\n%s", err, text(ctx, t))
	}
	before := text(ctx, t)
	if !strings.Contains(before, "Subject: waiting in the queue") {
		t.Errorf("queue page:\n%s", before)
	}
	labelled(ctx, t, "queue")
	attempts := func() int {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('article.entry tr:nth-child(2) td:nth-child(3)').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(v))
		return n
	}
	reloadQueue := func() {
		t.Helper()
		if err := step(ctx, chromedp.Navigate("http://"+l.HTTP+"/admin/queue"), chromedp.WaitVisible("//td[text()='dave@remote.example']")); err != nil {
			t.Fatal(err)
		}
	}
	// The first attempt follows the submission at once; the next is minutes away.
	for deadline := time.Now().Add(10 * time.Second); attempts() < 1; reloadQueue() {
		if time.Now().After(deadline) {
			t.Fatal("no first delivery attempt")
		}
	}
	tried := attempts()
	shoot(ctx, t, shots, "11-queue")
	if err := step(ctx,
		chromedp.Click("//button[text()='Retry now']"),
		chromedp.WaitVisible("//p[@role='status']"),
	); err != nil {
		t.Fatalf("retry: %v\n%s", err, text(ctx, t))
	}
	if body := text(ctx, t); !regexp.MustCompile(`retrying #\d+ now`).MatchString(body) {
		t.Errorf("after retry:\n%s", body)
	}
	// The running queue tried again at once, long before the next scheduled retry.
	for deadline := time.Now().Add(10 * time.Second); attempts() <= tried; reloadQueue() {
		if time.Now().After(deadline) {
			t.Fatalf("no new attempt after Retry now: still %d", tried)
		}
	}

	// Another site's form, posting to the admin page while the browser is logged in.
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="http://%s/admin/logout"><button id="go">win a prize</button></form>`, l.HTTP)
	}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = evil.Serve(ln) }()
	defer evil.Close()
	if err := step(ctx,
		chromedp.Navigate("http://"+ln.Addr().String()+"/"),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.CSS("body")),
	); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if body := text(ctx, t); !strings.Contains(body, "cross-site request refused") {
		t.Errorf("the cross-site POST was not refused:\n%s", body)
	}
	shoot(ctx, t, shots, "4-cross-site-refused")
	// Still logged in: the refused request did nothing.
	if err := step(ctx, chromedp.Navigate("http://"+l.HTTP+"/admin"), chromedp.WaitVisible("//h2[text()='Listeners']")); err != nil {
		t.Fatalf("the session did not survive the refused request: %v\n%s", err, text(ctx, t))
	}

	// Wrong passwords lock the address: the fourth try, right or wrong, is refused.
	if err := step(ctx, chromedp.Click("//button[text()='Log out']"), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := step(ctx,
			chromedp.SendKeys(chromedp.ID("password"), "wrong guess"),
			chromedp.Submit(chromedp.ID("password")),
			chromedp.WaitVisible("//p[@role='alert']"),
		); err != nil {
			t.Fatalf("wrong password %d: %v\n%s", i+1, err, text(ctx, t))
		}
	}
	shoot(ctx, t, shots, "5-wrong-password")
	if err := step(ctx,
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible("//h2[text()='Too many failed logins']"),
	); err != nil {
		t.Fatalf("locked address: %v\n%s", err, text(ctx, t))
	}
	shoot(ctx, t, shots, "6-locked")
	if n := len(regexp.MustCompile(`msg="authentication failed" pkg=webadmin protocol=web remote=127\.0\.0\.1 account=admin`).FindAllString(proc.Output(), -1)); n != 3 {
		t.Errorf("%d failed-login lines in the log, want 3", n)
	}
}

// imapLogin logs in over IMAPS (the test server's certificate is self-signed).
func imapLogin(t *testing.T, addr, user, password string) {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("IMAP login as %s with the password the page showed: %v", user, err)
	}
	_ = c.Logout().Wait()
}
