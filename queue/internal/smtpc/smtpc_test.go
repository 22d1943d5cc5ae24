package smtpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// transcript runs a scripted server on a loopback connection. Lines starting with "C: "
// are what the client must send (a trailing "*" matches any rest of the line), lines
// starting with "S: " are sent back (a literal \r\n inside splits lines within one write). It returns the client end and a function that
// waits for the script to finish and reports mismatches.
func transcript(t *testing.T, script string) (net.Conn, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		for _, step := range strings.Split(strings.TrimSpace(script), "\n") {
			step = strings.TrimSpace(step)
			switch {
			case strings.HasPrefix(step, "S:"):
				if _, err := srv.Write([]byte(strings.ReplaceAll(strings.TrimPrefix(step[2:], " "), `\r\n`, "\r\n") + "\r\n")); err != nil {
					errc <- err
					return
				}
			case strings.HasPrefix(step, "C:"):
				want := strings.TrimPrefix(step[2:], " ")
				line, err := br.ReadString('\n')
				if err != nil {
					errc <- errors.New("client sent nothing, want " + want + ": " + err.Error())
					return
				}
				if !strings.HasSuffix(line, "\r\n") {
					errc <- errors.New("line without CRLF: " + line)
					return
				}
				got := strings.TrimSuffix(line, "\r\n")
				if p, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(got, p) {
					continue
				}
				if got != want {
					errc <- errors.New("client sent " + got + ", want " + want)
					return
				}
			}
		}
		errc <- nil
	}()
	return cli, func() {
		t.Helper()
		select {
		case err := <-errc:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("script did not finish")
		}
	}
}

func dial(t *testing.T, conn net.Conn) *Client {
	t.Helper()
	c, err := New(context.Background(), conn, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello(context.Background(), "mx.a.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSendPipelined(t *testing.T) {
	conn, wait := transcript(t, `
		S: 220 mx.b.test ESMTP
		C: EHLO mx.a.test
		S: 250-mx.b.test
		S: 250-PIPELINING
		S: 250-SIZE 1000
		S: 250 8BITMIME
		C: MAIL FROM:<a@a.test> BODY=8BITMIME
		C: RCPT TO:<b@b.test>
		C: RCPT TO:<c@b.test>
		C: RCPT TO:<d@b.test>
		C: DATA
		S: 250 2.1.0 ok
		S: 250 2.1.5 ok
		S: 550-5.1.1 no such
		S: 550 5.1.1 user
		S: 451 4.3.0 try later
		S: 354 go on
		C: DKIM-Signature: x
		C: Subject: hi
		C: 
		C: ..dot
		C: bare lf
		C: .
		S: 250 2.0.0 queued as 1
		C: QUIT
		S: 221 bye
	`)
	c := dial(t, conn)
	if ok, _ := c.Extension("pipelining"); !ok || c.MaxSize() != 1000 {
		t.Fatalf("extensions %v", c.ext)
	}
	res, err := c.Send(context.Background(), &Envelope{From: "a@a.test", To: []string{"b@b.test", "c@b.test", "d@b.test"}, MailParams: []string{"BODY=8BITMIME"}},
		[]byte("DKIM-Signature: x\r\n"), []byte("Subject: hi\r\n\r\n.dot\nbare lf"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rcpts[0].Code != 250 || res.Rcpts[1].String() != "550 5.1.1 no such 5.1.1 user" || res.Rcpts[1].Enhanced != "5.1.1" ||
		res.Rcpts[1].Text() != "no such user" || !res.Rcpts[2].Temporary() {
		t.Errorf("rcpt replies %+v", res.Rcpts)
	}
	if res.Data.Code != 250 || res.Data.Enhanced != "2.0.0" {
		t.Errorf("data reply %+v", res.Data)
	}
	c.Quit()
	wait()
}

func TestSendSequential(t *testing.T) {
	conn, wait := transcript(t, `
		S: 220 mx.b.test ESMTP
		C: EHLO mx.a.test
		S: 250 mx.b.test
		C: MAIL FROM:<>
		S: 250 ok
		C: RCPT TO:<b@b.test>
		S: 250 ok
		C: DATA
		S: 354 go on
		C: body
		C: .
		S: 250 ok
		C: MAIL FROM:<a@a.test>
		S: 553 5.7.1 sender rejected
		C: RSET
		S: 250 ok
		C: MAIL FROM:<a@a.test>
		S: 250 ok
		C: RCPT TO:<b@b.test>
		S: 550 no
		C: RSET
		S: 250 ok
	`)
	c := dial(t, conn)
	ctx := context.Background()
	res, err := c.Send(ctx, &Envelope{To: []string{"b@b.test"}}, []byte("body\r\n"))
	if err != nil || res.Data.Code != 250 {
		t.Fatalf("first send: %v %+v", err, res)
	}
	_, err = c.Send(ctx, &Envelope{From: "a@a.test", To: []string{"b@b.test"}}, []byte("body\r\n"))
	var se *Error
	if !errors.As(err, &se) || se.Cmd != "MAIL FROM" || se.Reply.Enhanced != "5.7.1" {
		t.Fatalf("rejected sender: %v", err)
	}
	res, err = c.Send(ctx, &Envelope{From: "a@a.test", To: []string{"b@b.test"}}, []byte("body\r\n"))
	if err != nil || res.Rcpts[0].Code != 550 || res.Data.Code != 0 {
		t.Fatalf("all recipients refused: %v %+v", err, res)
	}
	c.Close()
	wait()
}

func TestPipelinedAllRefused(t *testing.T) {
	conn, wait := transcript(t, `
		S: 220 mx.b.test ESMTP
		C: EHLO mx.a.test
		S: 250-mx.b.test
		S: 250 PIPELINING
		C: MAIL FROM:<a@a.test>
		C: RCPT TO:<b@b.test>
		C: DATA
		S: 250 ok
		S: 550 no
		S: 354 go on anyway
		C: .
		S: 554 no valid recipients
		C: RSET
		S: 250 ok
	`)
	c := dial(t, conn)
	res, err := c.Send(context.Background(), &Envelope{From: "a@a.test", To: []string{"b@b.test"}}, []byte("x\r\n"))
	if err != nil || res.Rcpts[0].Code != 550 || res.Data.Code != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	c.Close()
	wait()
}

func TestGreetingAndHello(t *testing.T) {
	t.Run("refused greeting", func(t *testing.T) {
		conn, wait := transcript(t, `S: 554 5.7.1 go away`)
		_, err := New(context.Background(), conn, time.Second)
		var se *Error
		if !errors.As(err, &se) || se.Cmd != "greeting" || se.Reply.Code != 554 {
			t.Fatalf("err = %v", err)
		}
		wait()
	})
	t.Run("helo fallback", func(t *testing.T) {
		conn, wait := transcript(t, `
			S: 220 old
			C: EHLO mx.a.test
			S: 502 what
			C: HELO mx.a.test
			S: 250 hi
		`)
		c := dial(t, conn)
		if ok, _ := c.Extension("PIPELINING"); ok {
			t.Error("extensions after HELO")
		}
		c.Close()
		wait()
	})
	t.Run("auth", func(t *testing.T) {
		conn, wait := transcript(t, `
			S: 220 relay
			C: EHLO mx.a.test
			S: 250 AUTH PLAIN
			C: AUTH PLAIN AHVzZXIAcGFzcw==
			S: 535 5.7.8 bad
		`)
		c := dial(t, conn)
		err := c.Auth(context.Background(), "user", "pass")
		var se *Error
		if !errors.As(err, &se) || se.Reply.Code != 535 {
			t.Fatalf("err = %v", err)
		}
		c.Close()
		wait()
	})
	t.Run("starttls injection", func(t *testing.T) {
		conn, wait := transcript(t, `
			S: 220 mx
			C: EHLO mx.a.test
			S: 250 STARTTLS
			C: STARTTLS
			S: 220 go ahead\r\n250 injected
		`)
		c := dial(t, conn)
		if err := c.StartTLS(context.Background(), nil, "mx.a.test"); err == nil || !strings.Contains(err.Error(), "before the TLS handshake") {
			t.Fatalf("err = %v", err)
		}
		c.Close()
		wait()
	})
}

func TestRead(t *testing.T) {
	tests := []struct {
		in       string
		code     int
		enhanced string
		lines    int
		bad      bool
	}{
		{in: "250 ok\r\n", code: 250, lines: 1},
		{in: "250\r\n", code: 250, lines: 1},
		{in: "550 5.1.1 no\r\n", code: 550, enhanced: "5.1.1", lines: 1},
		{in: "550 4.1.1 class mismatch\r\n", code: 550, lines: 1},
		{in: "451 4.3.0\r\n", code: 451, enhanced: "4.3.0", lines: 1},
		{in: "250-a\r\n250-b\r\n250 c\r\n", code: 250, lines: 3},
		{in: "250-a\n250 b\n", code: 250, lines: 2},
		{in: "25 x\r\n", bad: true},
		{in: "250xok\r\n", bad: true},
		{in: "abc ok\r\n", bad: true},
		{in: "250-a\r\n251 b\r\n", bad: true},
		{in: "250-a\r\n", bad: true},
		{in: "250 " + strings.Repeat("x", 5000) + "\r\n", bad: true},
		{in: strings.Repeat("250-x\r\n", 200), bad: true},
	}
	for _, tc := range tests {
		c := &Client{r: bufio.NewReaderSize(strings.NewReader(tc.in), 4096)}
		rep, err := c.read()
		if tc.bad {
			if err == nil {
				t.Errorf("read(%.20q) = %+v, want error", tc.in, rep)
			}
			continue
		}
		if err != nil || rep.Code != tc.code || rep.Enhanced != tc.enhanced || len(rep.Lines) != tc.lines {
			t.Errorf("read(%q) = %+v, %v", tc.in, rep, err)
		}
	}
}

func TestDotWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ".\r\n"},
		{"a", "a\r\n.\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a\n", "a\r\n.\r\n"},
		{".a\r\n.\r\n..\r\n", "..a\r\n..\r\n...\r\n.\r\n"},
		{"a\rb", "a\r\nb\r\n.\r\n"},
		{"a\r", "a\r\n.\r\n"},
		{"a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
		{"x\n.\n", "x\r\n..\r\n.\r\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		d := &dotWriter{w: w, bol: true}
		// Byte by byte, to check that state carries over between writes.
		for i := range len(tc.in) {
			d.Write([]byte{tc.in[i]})
		}
		d.close()
		w.Flush()
		if b.String() != tc.want {
			t.Errorf("dot(%q) = %q, want %q", tc.in, b.String(), tc.want)
		}
	}
}
