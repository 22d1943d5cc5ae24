package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

// TestFail2banFilter runs Debian's fail2ban-regex with the shipped filter
// (contrib/fail2ban/coibox.conf) over the log of a real server, in both log formats,
// after failed SMTP AUTH (587 after STARTTLS, 465), IMAP LOGIN (143 after STARTTLS,
// 993) and admin page logins from different addresses: it must find exactly those
// addresses, never one written into an account name, and no successful login.
func TestFail2banFilter(t *testing.T) {
	f2b, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Fatal("fail2ban-regex is not installed; install it (apt-get install fail2ban): this test needs it")
	}
	filter, err := filepath.Abs(filepath.Join("..", "..", "contrib", "fail2ban", "coibox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			cfg, _, l := testutil.ServerConfig(t, "")
			c := "--config=" + cfg
			runSteps(t, "", []step{
				{name: "domain add", args: []string{"domain", "add", "example.org", c}},
				{name: "account add", args: []string{"account", "add", "alice@example.org", c}, stdin: "alice password\n"},
				{name: "admin passwd", args: []string{"admin", "passwd", c}, stdin: "the admin password\n"},
			})
			srv := startServer(t, cfg, "--log-format", format)
			tlsc := &tls.Config{InsecureSkipVerify: true} // the test server's self-signed certificate

			smtpAuth := func(ip, addr string, implicit bool, user, pass string, want int) {
				t.Helper()
				o := testutil.SMTPDialOptions{LocalIP: ip, Timeout: 20 * time.Second}
				if implicit {
					o.TLS = tlsc
				}
				sc, _, err := testutil.DialSMTP(t.Context(), addr, o)
				if err != nil {
					t.Fatal(err)
				}
				defer sc.Close()
				expect(t, "EHLO", 250)(sc.Hello("client.test"))
				if !implicit {
					expect(t, "STARTTLS", 220)(sc.StartTLS(tlsc))
					expect(t, "EHLO", 250)(sc.Hello("client.test"))
				}
				expect(t, "AUTH", want)(sc.AuthPlain(user, pass))
			}
			imapLogin := func(ip, addr string, implicit bool, user, pass string, ok bool) {
				t.Helper()
				d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
				nc, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				var ic *imapclient.Client
				if implicit {
					ic = imapclient.New(tls.Client(nc, tlsc), nil)
				} else if ic, err = imapclient.NewStartTLS(nc, &imapclient.Options{TLSConfig: tlsc}); err != nil {
					t.Fatal(err)
				}
				defer ic.Close()
				if err := ic.Login(user, pass).Wait(); (err == nil) != ok {
					t.Fatalf("IMAP LOGIN %s from %s: %v, want ok=%v", user, ip, err, ok)
				}
				if ok {
					_ = ic.Logout().Wait()
				}
			}
			const wrong = "not-The-password-42"
			smtpAuth("127.0.0.2", l.Submission, false, "alice@example.org", wrong, 535)
			smtpAuth("127.0.0.3", l.Submissions, true, "x remote=192.0.2.9", wrong, 535)
			smtpAuth("127.0.0.6", l.Submissions, true, "alice@example.org", "alice password", 235)
			imapLogin("127.0.0.4", l.IMAP, false, "alice@example.org", wrong, false)
			imapLogin("127.0.0.5", l.IMAPS, true, `y","remote":"192.0.2.10`, wrong, false)
			imapLogin("127.0.0.6", l.IMAPS, true, "alice@example.org", "alice password", true)
			webLogin := func(ip, pass string, want int) {
				t.Helper()
				hc := &http.Client{Timeout: 10 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
					Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
				resp, err := hc.PostForm("http://"+l.HTTP+"/admin/login", url.Values{"password": {pass}})
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("admin login from %s: %d, want %d", ip, resp.StatusCode, want)
				}
			}
			webLogin("127.0.0.7", wrong, 401)
			webLogin("127.0.0.6", "the admin password", 303)
			srv.stop(t, syscall.SIGTERM)

			logs := srv.stderr.String()
			if strings.Contains(logs, wrong) {
				t.Errorf("a password is in the log:\n%s", logs)
			}
			logFile := filepath.Join(t.TempDir(), "coibox.log")
			if err := os.WriteFile(logFile, []byte(logs), 0o600); err != nil {
				t.Fatal(err)
			}
			// One row per failure: ['ip', unix time, {...}]. A time of None would mean
			// the datepattern missed the line's time, and fail2ban could not count it.
			out, err := exec.Command(f2b, "--out", "row", logFile, filter).CombinedOutput()
			if err != nil {
				t.Fatalf("fail2ban-regex: %v\n%s", err, out)
			}
			var got []string
			start := srv.started.Add(-time.Minute).Unix()
			for _, m := range regexp.MustCompile(`(?m)^\['([^']*)',\s+(\w+),`).FindAllStringSubmatch(string(out), -1) {
				got = append(got, m[1])
				if when, err := strconv.ParseInt(m[2], 10, 64); err != nil || when < start || when > time.Now().Unix()+60 {
					t.Errorf("fail2ban-regex read the time of the failure from %s as %s", m[1], m[2])
				}
			}
			if want := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.7"}; !slices.Equal(got, want) {
				t.Errorf("fail2ban-regex found %q, want %q\n%s\nlog:\n%s", got, want, out, logs)
			}
		})
	}
}
