package testutil

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeSMTP accepts one connection, answers each line it reads with the next scripted
// reply (none for message data, until the dot), and hands back everything it read.
func fakeSMTP(t *testing.T, replies map[string]string) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		var seen strings.Builder
		r := bufio.NewReader(c)
		c.Write([]byte("220 fake ESMTP\r\n"))
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			seen.WriteString(line)
			if inData {
				if line == ".\r\n" {
					inData = false
					c.Write([]byte(replies["."]))
				}
				continue
			}
			verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			c.Write([]byte(replies[verb]))
			if verb == "DATA" && strings.HasPrefix(replies[verb], "354") {
				inData = true
			}
			if verb == "QUIT" {
				break
			}
		}
		out <- seen.String()
	}()
	return ln.Addr().String(), out
}

func TestSMTPClient(t *testing.T) {
	ok := map[string]string{
		"EHLO": "250-fake\r\n250 PIPELINING\r\n",
		"MAIL": "250 2.1.0 Ok\r\n",
		"RCPT": "250 2.1.5 Ok\r\n",
		"DATA": "354 go ahead\r\n",
		".":    "250 2.0.0 queued\r\n",
		"QUIT": "221 bye\r\n",
	}
	tests := []struct {
		name      string
		replies   map[string]string
		pipelined bool
		body      string
		want      string // final reply
		wantWire  string // the transaction as the server read it
	}{
		{
			name: "dot-stuffing and bare LF",
			body: "Subject: x\n\n.leading dot\r\nend", replies: ok,
			want:     "250 2.0.0 queued",
			wantWire: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: x\r\n\r\n..leading dot\r\nend\r\n.\r\n",
		},
		{
			name: "wire-ready body goes as is", pipelined: true,
			body: "Subject: y\r\n\r\nbody\r\n", replies: ok,
			want:     "250 2.0.0 queued",
			wantWire: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: y\r\n\r\nbody\r\n.\r\n",
		},
		{
			name: "pipelined recipient refused", pipelined: true,
			body: "x\r\n",
			replies: map[string]string{
				"EHLO": ok["EHLO"], "MAIL": ok["MAIL"], "QUIT": ok["QUIT"],
				"RCPT": "550 5.1.1 unknown\r\n",
				"DATA": "554 5.5.1 no valid recipients\r\n",
			},
			want:     "550 5.1.1 unknown",
			wantWire: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n",
		},
		{
			name: "refusal at RCPT stops the transaction",
			body: "x\r\n",
			replies: map[string]string{
				"EHLO": ok["EHLO"], "MAIL": ok["MAIL"], "QUIT": ok["QUIT"],
				"RCPT": "452 4.5.3 too many\r\n",
			},
			want:     "452 4.5.3 too many",
			wantWire: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeSMTP(t, tc.replies)
			c, greet, err := DialSMTP(context.Background(), addr, SMTPDialOptions{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if greet.Code != 220 {
				t.Fatalf("greeting %q", greet)
			}
			r, err := c.Hello("client")
			if err != nil || r.Code != 250 || len(r.Lines) != 2 || r.Lines[1] != "PIPELINING" {
				t.Fatalf("EHLO: %+v, %v", r, err)
			}
			send := c.Send
			if tc.pipelined {
				send = c.SendPipelined
			}
			r, err = send("a@x", []string{"b@y"}, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.want {
				t.Errorf("reply %q, want %q", r, tc.want)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			wire := strings.TrimPrefix(<-got, "EHLO client\r\n")
			if wire != tc.wantWire+"QUIT\r\n" {
				t.Errorf("server read\n%q\nwant\n%q", wire, tc.wantWire+"QUIT\r\n")
			}
		})
	}
}
