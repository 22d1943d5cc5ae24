package smtpd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coibox/coibox/smtpd"
	"github.com/coibox/coibox/store"
)

// replyLine is what every line the server writes must look like (RFC 5321 §4.2):
// a reply code 2xx to 5xx, then a space or a hyphen and text, or nothing.
var replyLine = regexp.MustCompile(`^[2-5][0-5][0-9]([ -][\x20-\x7e]*)?$`)

// utf8Reply is a reply line with UTF-8 text: go-smtp echoes every address it
// accepts, and a non-ASCII one is accepted only in a transaction whose MAIL FROM
// carried SMTPUTF8 (RFC 6531 §3.5), so only an input naming it may see one.
var utf8Reply = regexp.MustCompile(`^[2-5][0-5][0-9]([ -][^\x00-\x1f\x7f]*)?$`)

// echoLine is the one reply go-smtp (v0.25) writes itself with the client's bytes in
// it: an unknown command word is echoed as it came, control and 8-bit bytes
// included, and it has no hook to change that. The session goes on unharmed, so
// the fuzz target lets it pass; it is listed as left in the hardening issue.
var echoLine = regexp.MustCompile(`^500 5\.5\.2 Syntax errors, .* command unrecognized$`)

// FuzzSession feeds arbitrary bytes, after EHLO, to an MX session over a real
// connection: command arguments and parameters (MAIL FROM, RCPT TO, SIZE, BODY,
// SMTPUTF8, REQUIRETLS, …), pipelining, DATA with any content. Nothing may panic;
// every reply line must be well formed; no reply may be an internal error; the
// session must end once the client has gone; and every message the server said it
// queued must be in the store, which holds nothing else.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<x@example.net> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n",
		"MAIL FROM:<> SMTPUTF8\r\nRCPT TO:<alice@EXAMPLE.org> NOTIFY=NEVER ORCPT=rfc822;alice@example.org\r\nDATA\r\n\r\n..dot\r\n.\r\n",
		"MAIL FROM:<x@example.net> BODY=BINARYMIME\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nBDAT 5 LAST\r\nhello",
		"MAIL FROM:<\x00@example.net>\r\nMAIL FROM:<a\xff@b>\r\nMAIL FROM:<x@y> SIZE=99999999999999999999\r\nRCPT TO:<\"a b\"@example.org>\r\n",
		"MAIL FROM:<x@example.net>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nRSET\r\nNOOP\r\nHELP\r\nVRFY alice\r\n",
		"MAIL FROM:<@route:x@example.net> AUTH=<>\r\nRCPT TO:<alice@example.org\r\nSTARTTLS\r\n",
		"MAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: bare\rCR\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	ts := startServer(f, smtpd.MX, func(o *smtpd.Options) {
		o.MaxConnectionsPerIP = 1000
		o.MaxMessageBytes = 64 << 10
		o.ReadTimeout = 2 * time.Second
		o.DataTimeout = 2 * time.Second
	})
	// stored counts the INBOX messages of both accounts (a snapshot, not the bodies:
	// the fuzzer fills the store).
	stored := func(t *testing.T) int {
		n := 0
		for _, acc := range []*store.Account{ts.alice, ts.bob} {
			mb, err := ts.st.Mailbox(t.Context(), acc.ID, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			_, metas, err := ts.st.Snapshot(t.Context(), mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			n += len(metas)
		}
		return n
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := stored(t)
		conn, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		go func() {
			in := append([]byte("EHLO fuzz.example.net\r\n"), data...)
			_, _ = conn.Write(append(in, "\r\n.\r\nQUIT\r\n"...))
			// Whatever the session still waits for (a BDAT chunk, the end of DATA)
			// will not come: the client has said all it will.
			time.Sleep(300 * time.Millisecond)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		var out bytes.Buffer
		queued := 0
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			fmt.Fprintln(&out, line)
			ok := replyLine.MatchString(line) || echoLine.MatchString(line) ||
				utf8Reply.MatchString(line) && utf8.ValidString(line) && bytes.Contains(bytes.ToUpper(data), []byte("SMTPUTF8"))
			if !ok {
				t.Fatalf("malformed reply line %q to %q; transcript:\n%s", line, data, out.String())
			}
			if strings.Contains(line, "nternal") || strings.HasPrefix(line, "451 4.3.0") {
				t.Fatalf("internal error %q for %q; transcript:\n%s", line, data, out.String())
			}
			if strings.HasPrefix(line, "250 2.0.0 Ok: queued as ") {
				queued++
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("reading replies: %v (the session did not end?); transcript:\n%s", err, out.String())
		}
		// The store has committed before the 250 (deliver's invariant).
		if got := stored(t) - before; got != queued {
			t.Fatalf("the server said %d queued, the store gained %d messages, for %q; transcript:\n%s", queued, got, data, out.String())
		}
	})
}
