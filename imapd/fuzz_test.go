package imapd

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzSession feeds random command sequences to a logged-in session over an
// in-memory connection. No input may crash the session, make it report an internal
// error, or keep it running once the client has gone.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"f1 FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject)] BINARY[1] BODY[1.MIME]<0.10>)\r\n",
		"s1 UID SEARCH RETURN (MIN MAX SAVE) OR (SUBJECT x BODY y) NOT (SEEN 2:*) UID $ MODSEQ 1\r\nf2 FETCH $ UID\r\n",
		"t1 STORE 1:* (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Deleted $Chat)\r\ne1 EXPUNGE\r\n",
		"a1 APPEND INBOX (\\Seen) {11+}\r\nSubject: x\r\n\r\n",
		"m1 SETMETADATA \"\" (/private/a {3+}\r\none /private/b NIL)\r\nm2 GETMETADATA (DEPTH infinity MAXSIZE 2) \"\" /private\r\n",
		"c1 CREATE a/b/c\r\nr1 RENAME a z\r\nl1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" * RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\nd1 DELETE z/b\r\n",
		"q1 ENABLE QRESYNC IMAP4rev2\r\nq2 SELECT INBOX (QRESYNC (1 1 1:* (1 1)))\r\nq3 UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
		"i1 IDLE\r\nDONE\r\nn1 NOOP\r\nc2 CLOSE\r\nx1 EXAMINE Archive\r\nu1 UNSELECT\r\n",
		"v1 UID MOVE 1:2 Trash\r\nv2 COPY 1 Nosuch\r\nv3 UID EXPUNGE 1:*\r\nv4 STATUS INBOX (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)\r\n",
		"z1 COMPRESS DEFLATE\r\n",
		"g1 GETQUOTAROOT INBOX\r\ng2 ID NIL\r\ng3 AUTHENTICATE PLAIN\r\n",
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f, func(o *Options) {
		o.Limits.MaxLine = 4096
		o.Limits.MaxLiteral = 64 << 10
		o.Limits.MaxMessageSize = 64 << 10
		o.Limits.MaxConnsPerIP = 1000
		o.Limits.MaxConnsPerAccount = 1000
		// Failed logins would otherwise add seconds of deliberate delay.
		o.Limits.AccountFailures = 1 << 30
	})
	for i := 1; i <= 3; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, "fuzz"))
	}
	e.deliver(e.acc, "INBOX", mimeMessage)
	f.Fuzz(func(t *testing.T, data []byte) {
		sconn, cconn := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.srv.serveConn(context.Background(), sconn, false)
		}()
		var out bytes.Buffer
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			_, _ = io.Copy(&out, cconn)
		}()
		go func() {
			in := append([]byte("a LOGIN alice@example.org "+testPassword+"\r\nb SELECT INBOX\r\n"), data...)
			in = append(in, "\r\nz LOGOUT\r\n"...)
			_, _ = cconn.Write(in)
		}()
		// Give the session time to work through the input, then hang up: whatever it
		// is waiting for (a literal, DONE) will not come.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cconn.Close()
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session still running 10 s after the client left; output:\n%s", clipOut(out.Bytes()))
		}
		cconn.Close()
		<-readDone
		if bytes.Contains(out.Bytes(), []byte("internal error")) || bytes.Contains(out.Bytes(), []byte("SERVERBUG")) {
			t.Fatalf("internal error for input %q; output:\n%s", data, clipOut(out.Bytes()))
		}
	})
}

func clipOut(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}
