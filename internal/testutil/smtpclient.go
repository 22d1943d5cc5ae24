package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// SMTPReply is one SMTP reply as the server sent it.
type SMTPReply struct {
	Code  int
	Lines []string // the text of each line, without the code and separator
}

// String renders the reply's first line as it appeared on the wire ("550 5.1.1 …").
func (r SMTPReply) String() string {
	if len(r.Lines) == 0 {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + r.Lines[0]
}

// Text is the reply's text, lines joined by newlines.
func (r SMTPReply) Text() string { return strings.Join(r.Lines, "\n") }

// SMTPClient is a small SMTP client that hands back every reply as it came. Tests and
// benchmarks use it to assert exact codes and to time single steps, which net/smtp
// hides behind errors and combined calls.
type SMTPClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	// Timeout bounds each command's round trip (and each message's whole DATA phase).
	Timeout time.Duration
}

// SMTPDialOptions adjust DialSMTP; the zero value is usable.
type SMTPDialOptions struct {
	// LocalIP is the source address, e.g. 127.0.0.5: tests use different loopback
	// addresses to get separate per-IP limits.
	LocalIP string
	// TLS, when set, starts TLS at once (implicit TLS, port 465).
	TLS *tls.Config
	// Timeout bounds the connect and each later round trip; default 30s.
	Timeout time.Duration
}

// DialSMTP connects to addr and reads the greeting, which it returns whatever its code
// (a 421 greeting is a refusal tests look for).
func DialSMTP(ctx context.Context, addr string, o SMTPDialOptions) (*SMTPClient, SMTPReply, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: o.Timeout}
	if o.LocalIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.LocalIP)}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, SMTPReply{}, fmt.Errorf("dial smtp %s: %w", addr, err)
	}
	if o.TLS != nil {
		conn = tls.Client(conn, o.TLS)
	}
	c := &SMTPClient{conn: conn, Timeout: o.Timeout}
	c.r = bufio.NewReader(conn)
	c.w = bufio.NewWriter(conn)
	c.deadline()
	greet, err := c.ReadReply()
	if err != nil {
		conn.Close()
		return nil, SMTPReply{}, fmt.Errorf("read greeting: %w", err)
	}
	return c, greet, nil
}

func (c *SMTPClient) deadline() { _ = c.conn.SetDeadline(time.Now().Add(c.Timeout)) }

// Conn is the underlying connection (TLS after StartTLS).
func (c *SMTPClient) Conn() net.Conn { return c.conn }

// ReadReply reads one (possibly multi-line) reply.
func (c *SMTPClient) ReadReply() (SMTPReply, error) {
	var r SMTPReply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, fmt.Errorf("read reply: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return r, fmt.Errorf("read reply: short line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || (r.Code != 0 && code != r.Code) {
			return r, fmt.Errorf("read reply: bad line %q", line)
		}
		r.Code = code
		more := len(line) > 3 && line[3] == '-'
		if len(line) > 4 {
			r.Lines = append(r.Lines, line[4:])
		} else {
			r.Lines = append(r.Lines, "")
		}
		if !more {
			return r, nil
		}
	}
}

// Cmd sends one command line and returns the reply.
func (c *SMTPClient) Cmd(format string, args ...any) (SMTPReply, error) {
	c.deadline()
	if _, err := fmt.Fprintf(c.w, format+"\r\n", args...); err != nil {
		return SMTPReply{}, fmt.Errorf("send command: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return SMTPReply{}, fmt.Errorf("send command: %w", err)
	}
	return c.ReadReply()
}

// Hello sends EHLO.
func (c *SMTPClient) Hello(name string) (SMTPReply, error) { return c.Cmd("EHLO %s", name) }

// StartTLS sends STARTTLS and, on 220, switches the connection to TLS (handshake
// included). A refusal is returned as the reply with a nil error.
func (c *SMTPClient) StartTLS(cfg *tls.Config) (SMTPReply, error) {
	r, err := c.Cmd("STARTTLS")
	if err != nil || r.Code != 220 {
		return r, err
	}
	tc := tls.Client(c.conn, cfg)
	c.deadline()
	if err := tc.Handshake(); err != nil {
		return r, fmt.Errorf("tls handshake: %w", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
	c.w = bufio.NewWriter(tc)
	return r, nil
}

// AuthPlain authenticates with SASL PLAIN, the credentials on the AUTH line.
func (c *SMTPClient) AuthPlain(user, password string) (SMTPReply, error) {
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	return c.Cmd("AUTH PLAIN %s", resp)
}

// Data sends DATA and, after a 354, the message (dot-stuffed, with bare LFs turned into
// CRLF) and its terminating dot, and returns the final reply. If DATA is not answered
// with 354, that reply is returned.
func (c *SMTPClient) Data(body []byte) (SMTPReply, error) {
	r, err := c.Cmd("DATA")
	if err != nil || r.Code != 354 {
		return r, err
	}
	return c.sendBody(body)
}

// sendBody writes a message after the 354 and reads the final reply.
func (c *SMTPClient) sendBody(body []byte) (SMTPReply, error) {
	c.deadline()
	if wireReady(body) {
		// Already in wire form: write it as is, which benchmarks need to keep the
		// client's CPU out of the figures.
		_, _ = c.w.Write(body)
		if _, err := c.w.WriteString(".\r\n"); err != nil {
			return SMTPReply{}, fmt.Errorf("send message: %w", err)
		}
		if err := c.w.Flush(); err != nil {
			return SMTPReply{}, fmt.Errorf("send message: %w", err)
		}
		return c.ReadReply()
	}
	dw := textproto.NewWriter(c.w).DotWriter()
	if _, err := dw.Write(body); err != nil {
		return SMTPReply{}, fmt.Errorf("send message: %w", err)
	}
	if err := dw.Close(); err != nil { // writes ".\r\n" and flushes
		return SMTPReply{}, fmt.Errorf("send message: %w", err)
	}
	return c.ReadReply()
}

// wireReady reports whether body can go on the wire unchanged: CRLF line ends only,
// ending in CRLF, and no line that starts with a dot.
func wireReady(body []byte) bool {
	return bytes.HasSuffix(body, []byte("\r\n")) && body[0] != '.' && // HasSuffix: not empty
		!bytes.Contains(body, []byte("\n.")) &&
		bytes.Count(body, []byte("\n")) == bytes.Count(body, []byte("\r\n"))
}

// SendPipelined runs one transaction the way MTAs do with PIPELINING (RFC 2920): MAIL
// FROM, every RCPT TO and DATA go out in one write, then the replies are read in
// order. It returns the first failing reply, or the reply to the message.
func (c *SMTPClient) SendPipelined(from string, rcpts []string, body []byte) (SMTPReply, error) {
	c.deadline()
	fmt.Fprintf(c.w, "MAIL FROM:<%s>\r\n", from)
	for _, rc := range rcpts {
		fmt.Fprintf(c.w, "RCPT TO:<%s>\r\n", rc)
	}
	c.w.WriteString("DATA\r\n")
	if err := c.w.Flush(); err != nil {
		return SMTPReply{}, fmt.Errorf("send commands: %w", err)
	}
	var first *SMTPReply
	accepted := 0
	for i := range 1 + len(rcpts) {
		r, err := c.ReadReply()
		if err != nil {
			return r, err
		}
		switch {
		case r.Code/100 == 2 && i > 0:
			accepted++
		case r.Code/100 != 2 && first == nil:
			first = &r
		}
	}
	r, err := c.ReadReply() // to DATA
	if err != nil {
		return r, err
	}
	if r.Code != 354 {
		if first != nil {
			return *first, nil
		}
		return r, nil
	}
	if accepted == 0 {
		// DATA was taken although no recipient was: end the empty message.
		end, err := c.sendBody(nil)
		if err != nil || first == nil {
			return end, err
		}
		return *first, nil
	}
	return c.sendBody(body)
}

// Send runs one transaction: MAIL FROM, RCPT TO for each recipient, DATA. It stops at
// the first reply that is not a success and returns it; otherwise it returns the reply
// to the message. from is used as is inside MAIL FROM:<…>.
func (c *SMTPClient) Send(from string, rcpts []string, body []byte) (SMTPReply, error) {
	r, err := c.Cmd("MAIL FROM:<%s>", from)
	if err != nil || r.Code != 250 {
		return r, err
	}
	for _, rc := range rcpts {
		r, err = c.Cmd("RCPT TO:<%s>", rc)
		if err != nil || r.Code/100 != 2 {
			return r, err
		}
	}
	return c.Data(body)
}

// Quit sends QUIT and closes the connection.
func (c *SMTPClient) Quit() error {
	_, err := c.Cmd("QUIT")
	return errors.Join(err, c.conn.Close())
}

// Close closes the connection without QUIT.
func (c *SMTPClient) Close() error { return c.conn.Close() }
