package imapd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/store"
)

const testPassword = "password123"

// testEnv is a server on 127.0.0.1 with a real store in a temporary directory and one
// account, alice@example.org.
type testEnv struct {
	t    testing.TB
	st   *store.Store
	srv  *Server
	addr string
	acc  *store.Account
}

func newEnv(t testing.TB, tune ...func(*Options)) *testEnv {
	t.Helper()
	return newEnvStore(t, store.Options{Summarize: Summarize}, tune...)
}

// newEnvStore is newEnv with chosen store options.
func newEnvStore(t testing.TB, so store.Options, tune ...func(*Options)) *testEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	acc, err := st.AddAccount(ctx, "alice@example.org", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: st, Hostname: "imap.example.org", Compress: true}
	for _, f := range tune {
		f(&opts)
	}
	srv := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln)
	}()
	t.Cleanup(func() {
		c, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		if err := srv.Shutdown(c); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		<-done
		st.Close()
	})
	return &testEnv{t: t, st: st, srv: srv, addr: ln.Addr().String(), acc: acc}
}

// addAccount adds another account.
func (e *testEnv) addAccount(addr string) *store.Account {
	e.t.Helper()
	acc, err := e.st.AddAccount(context.Background(), addr, testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	return acc
}

// deliver stores a message as SMTP delivery would, returning its UID.
func (e *testEnv) deliver(acc *store.Account, mailbox, body string) uint32 {
	e.t.Helper()
	res, _, err := e.st.Deliver(context.Background(), &store.Delivery{
		Body:    []byte(strings.ReplaceAll(body, "\n", "\r\n")),
		Targets: []store.Target{{AccountID: acc.ID, Mailbox: mailbox}},
	})
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("deliver: %v %v", err, res)
	}
	return res[0].UID
}

func testMessage(n int, subject string) string {
	return fmt.Sprintf(`Message-ID: <m%d@example.org>
Date: Tue, 01 Sep 2026 10:00:%02d +0200
From: Bob <bob@example.net>
To: alice@example.org
Subject: %s
Content-Type: text/plain; charset=utf-8

Hello number %d.
`, n, n%60, subject, n)
}

// transcript runs a scripted conversation against the server. Lines:
//
//	C: text    the client sends text + CRLF
//	L: text    the client sends text + a bare LF (as some clients end lines)
//	S: text    the server's next line must match; <n> matches digits, <*> anything
//	! name     runs actions[name] (e.g. a delivery while the client idles)
//
// Leading tabs, blank lines and lines starting with # are ignored.
func (e *testEnv) transcript(t *testing.T, script string, actions map[string]func()) {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	var log strings.Builder
	for n, line := range strings.Split(script, "\n") {
		line = strings.TrimLeft(line, "\t ")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "C: "), strings.HasPrefix(line, "L: "):
			text, eol := line[3:], "\r\n"
			if line[0] == 'L' {
				eol = "\n"
			}
			log.WriteString(line + "\n")
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(text + eol)); err != nil {
				t.Fatalf("line %d: write: %v\n%s", n+1, err, log.String())
			}
		case strings.HasPrefix(line, "S: "):
			want := line[3:]
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := r.ReadString('\n')
			got = strings.TrimSuffix(got, "\r\n")
			if err != nil {
				t.Fatalf("line %d: want %q, read error %v (got %q)\n%s", n+1, want, err, got, log.String())
			}
			log.WriteString("S: " + got + "\n")
			if !lineMatch(want, got) {
				t.Fatalf("line %d: server sent\n\t%q\nwant\n\t%q\ntranscript:\n%s", n+1, got, want, log.String())
			}
		case strings.HasPrefix(line, "! "):
			name := strings.TrimSpace(line[2:])
			f, ok := actions[name]
			if !ok {
				t.Fatalf("line %d: no action %q", n+1, name)
			}
			f()
		default:
			t.Fatalf("line %d: bad script line %q", n+1, line)
		}
	}
}

func lineMatch(pattern, got string) bool {
	if !strings.Contains(pattern, "<n>") && !strings.Contains(pattern, "<*>") {
		return pattern == got
	}
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, "<n>", `\d+`)
	re = strings.ReplaceAll(re, "<\\*>", ".*")
	return regexp.MustCompile("^" + re + "$").MatchString(got)
}
