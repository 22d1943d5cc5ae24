package imapd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// FuzzSummarize feeds arbitrary message bytes through Summarize, which every
// delivery runs (MIME structure, ENVELOPE, BODYSTRUCTURE). Nothing may panic, the
// summary must read back, and the pre-rendered ENVELOPE and BODYSTRUCTURE, in
// IMAP4rev1 and UTF-8 form, must be what a real client parses: go-imap's imapclient
// reads them as a server's FETCH response. Damaged summaries (the same bytes read as
// a stored summary) must be refused, never crash a reader.
func FuzzSummarize(f *testing.F) {
	for _, s := range []string{
		mimeMessage,
		testMessage(1, "fuzz"),
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: undisclosed-recipients:;\r\nTo: a@b, (c) <d@e>\r\n\r\nbody",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--x--\r\n",
		"Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n--\r\n\r\n",
		"Content-Type: text/plain; charset=\"utf\\\"8\"; name*=utf-8''%E2%82%AC\r\nContent-Disposition: attachment; filename=\"\x00\"\r\n\r\n\xff\xfe",
		"From: \"J\xc3\xb6rg\" <j\xc3\xb6rg@b\xc3\xbcro.example>\r\nMessage-ID: <a@b> <c@d>\r\nIn-Reply-To: <x\r\n\r\n",
		"no header at all",
		"",
	} {
		f.Add([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, ok := parseSummary(body); ok && (len(body) == 0 || body[0] != summaryVersion) {
			t.Fatalf("parseSummary accepted bytes of version %d", body[0])
		}
		sum, ok := parseSummary(Summarize(body))
		if !ok {
			t.Fatalf("the summary of %q does not read back", body)
		}
		if sum.headerLen < 0 || sum.headerLen > len(body) {
			t.Fatalf("header length %d of a %d-byte message", sum.headerLen, len(body))
		}
		for _, utf8 := range []bool{false, true} {
			env, bs := sum.envelope(utf8), sum.bodyStructure(utf8)
			if err := clientReads(env, bs); err != nil {
				t.Fatalf("imapclient cannot read the summary (utf8 %v) of %q: %v\nENVELOPE %s\nBODYSTRUCTURE %s", utf8, body, err, env, bs)
			}
		}
	})
}

// clientReads serves one FETCH response carrying env and bs to go-imap's imapclient
// and reports whether it parsed it.
func clientReads(env, bs []byte) error {
	sconn, cconn := net.Pipe()
	defer sconn.Close()
	_ = sconn.SetDeadline(time.Now().Add(5 * time.Second))
	served := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(sconn)
		fmt.Fprint(w, "* OK [CAPABILITY IMAP4rev1 UTF8=ACCEPT] ready\r\n")
		if err := w.Flush(); err != nil {
			served <- err
			return
		}
		r := bufio.NewReader(sconn)
		line, err := r.ReadString('\n')
		if err != nil {
			served <- err
			return
		}
		tag, _, _ := strings.Cut(line, " ")
		fmt.Fprintf(w, "* 1 FETCH (UID 1 ENVELOPE %s BODYSTRUCTURE %s)\r\n%s OK done\r\n", env, bs, tag)
		served <- w.Flush()
		// Drain what the client says until it hangs up.
		_, _ = r.WriteTo(io.Discard)
	}()
	c := imapclient.New(cconn, nil)
	defer c.Close()
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if serr := <-served; serr != nil {
		return fmt.Errorf("serve: %w", serr)
	}
	if err != nil {
		return err
	}
	if len(msgs) != 1 || msgs[0].Envelope == nil || msgs[0].BodyStructure == nil {
		return fmt.Errorf("FETCH gave %d messages, envelope or body structure missing", len(msgs))
	}
	return nil
}
