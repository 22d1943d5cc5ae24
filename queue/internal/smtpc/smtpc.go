// Package smtpc is the SMTP client of the outbound queue: exactly what relaying to
// another MTA needs (EHLO, STARTTLS, AUTH PLAIN, PIPELINING, per-recipient replies).
//
// It exists instead of go-smtp's client because the queue must see every reply
// verbatim (it goes into DSNs), decide about STARTTLS after reading EHLO on the same
// connection, and pipeline the envelope (RFC 2920) to save round trips per message.
package smtpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const (
	// maxLine bounds one reply line; RFC 5321 4.5.3.1.5 says 512, real servers send
	// a bit more, and nothing legitimate comes close to this.
	maxLine = 4096
	// maxLines bounds a multi-line reply (EHLO lists a few dozen at most).
	maxLines = 128
)

// Reply is a server reply.
type Reply struct {
	Code int
	// Enhanced is the RFC 3463 status code of the first line ("5.1.1"), if any.
	Enhanced string
	// Lines are the texts of the reply lines, after the code and separator.
	Lines []string
}

// String renders the reply on one line: "550 5.1.1 no such user".
func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	for _, l := range r.Lines {
		s += " " + l
	}
	return s
}

// Text is the reply without its code and enhanced code.
func (r Reply) Text() string {
	var parts []string
	for _, l := range r.Lines {
		l = strings.TrimSpace(l)
		if r.Enhanced != "" {
			l = strings.TrimSpace(strings.TrimPrefix(l, r.Enhanced))
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

// Temporary reports a 4xx reply.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports a 5xx reply.
func (r Reply) Permanent() bool { return r.Code >= 500 }

// Error is a reply refusing a command.
type Error struct {
	Cmd   string // "MAIL FROM", "RCPT TO", "DATA", …
	Reply Reply
}

func (e *Error) Error() string { return e.Cmd + ": " + e.Reply.String() }

// Client is one SMTP connection. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	ext  map[string]string
	tls  bool

	// CommandTimeout bounds each command's round trip (RFC 5321 4.5.3.2: 5 minutes).
	CommandTimeout time.Duration
	// DataTimeout bounds the wait for the reply to the final dot (RFC 5321: 10 minutes).
	DataTimeout time.Duration
}

// New wraps conn and reads the server's greeting. A greeting other than 220 is
// returned as *Error with Cmd "greeting".
func New(ctx context.Context, conn net.Conn, timeout time.Duration) (*Client, error) {
	c := &Client{
		conn:           conn,
		r:              bufio.NewReaderSize(conn, 4096),
		w:              bufio.NewWriterSize(conn, 16<<10),
		CommandTimeout: timeout,
		DataTimeout:    2 * timeout,
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 5 * time.Minute
		c.DataTimeout = 10 * time.Minute
	}
	stop := c.watch(ctx)
	defer stop()
	c.deadline(c.CommandTimeout)
	rep, err := c.read()
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if rep.Code != 220 {
		return nil, &Error{Cmd: "greeting", Reply: rep}
	}
	return c, nil
}

// watch closes the connection's deadline early when ctx ends, so a cancelled
// delivery does not sit out a five-minute command timeout.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	s := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { s() }
}

func (c *Client) deadline(d time.Duration) { _ = c.conn.SetDeadline(time.Now().Add(d)) }

// Hello sends EHLO, falling back to HELO for servers that reject it.
func (c *Client) Hello(ctx context.Context, name string) error {
	stop := c.watch(ctx)
	defer stop()
	rep, err := c.cmd("EHLO " + name)
	if err != nil {
		return err
	}
	if rep.Code == 250 {
		c.ext = map[string]string{}
		for _, l := range rep.Lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(k)] = v
		}
		return nil
	}
	if rep.Code != 500 && rep.Code != 502 && rep.Code != 504 && rep.Code != 550 {
		return &Error{Cmd: "EHLO", Reply: rep}
	}
	c.ext = map[string]string{}
	rep, err = c.cmd("HELO " + name)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return &Error{Cmd: "HELO", Reply: rep}
	}
	return nil
}

// Extension reports whether the server announced an EHLO keyword, and its parameters.
func (c *Client) Extension(name string) (bool, string) {
	v, ok := c.ext[strings.ToUpper(name)]
	return ok, v
}

// MaxSize is the server's SIZE limit, 0 when it announced none.
func (c *Client) MaxSize() int64 {
	ok, v := c.Extension("SIZE")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// StartTLS upgrades the connection and says EHLO again, as RFC 3207 requires. The
// certificate is checked by cfg: a caller that wants to deliver despite a bad
// certificate passes InsecureSkipVerify and verifies the chain itself.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config, hello string) error {
	stop := c.watch(ctx)
	rep, err := c.cmd("STARTTLS")
	stop()
	if err != nil {
		return err
	}
	if rep.Code != 220 {
		return &Error{Cmd: "STARTTLS", Reply: rep}
	}
	if c.r.Buffered() > 0 {
		// Bytes after the 220 came before the handshake: an injection attempt
		// (CVE-2011-0411 style). Nothing read in plain text may be trusted.
		return errors.New("starttls: server sent data before the TLS handshake")
	}
	tc := tls.Client(c.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.CommandTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.conn = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	c.tls = true
	c.ext = nil
	return c.Hello(ctx, hello)
}

// TLS returns the connection's TLS state, if it is encrypted.
func (c *Client) TLS() (tls.ConnectionState, bool) {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// Auth authenticates with AUTH PLAIN (RFC 4616).
func (c *Client) Auth(ctx context.Context, user, password string) error {
	stop := c.watch(ctx)
	defer stop()
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	rep, err := c.cmd("AUTH PLAIN " + resp)
	if err != nil {
		return err
	}
	if rep.Code != 235 {
		return &Error{Cmd: "AUTH", Reply: rep}
	}
	return nil
}

// Envelope is one mail transaction.
type Envelope struct {
	From string
	To   []string
	// MailParams are appended to MAIL FROM ("BODY=8BITMIME", "SMTPUTF8", "REQUIRETLS").
	MailParams []string
}

// Result holds the replies of a transaction. Rcpts has one reply per envelope
// recipient; Data is the reply to the final dot, zero when DATA was not reached.
type Result struct {
	Rcpts []Reply
	Data  Reply
	// DataSent says the final dot went out: if Send then fails, the server may have
	// taken the message, and sending it again could duplicate it.
	DataSent bool
}

// Send runs one transaction: MAIL, RCPT for each recipient, and, if any was accepted,
// DATA with the message made of parts (written one after another, dot-stuffed, with
// line ends normalized to CRLF). The envelope is pipelined when the server allows
// (RFC 2920). A refused MAIL FROM or DATA is returned as *Error; per-recipient
// refusals are only in Result. Any other error means the connection failed; then the
// Result, if not nil, says whether the message may have been taken.
func (c *Client) Send(ctx context.Context, env *Envelope, parts ...[]byte) (*Result, error) {
	stop := c.watch(ctx)
	defer stop()
	mail := "MAIL FROM:<" + env.From + ">"
	for _, p := range env.MailParams {
		mail += " " + p
	}
	res := &Result{Rcpts: make([]Reply, len(env.To))}
	pipelining, _ := c.Extension("PIPELINING")

	c.deadline(c.CommandTimeout)
	var mailRep Reply
	var err error
	if pipelining {
		// One flush for the whole envelope plus DATA, then read the replies in order.
		c.write(mail)
		for _, to := range env.To {
			c.write("RCPT TO:<" + to + ">")
		}
		c.write("DATA")
		if err := c.w.Flush(); err != nil {
			return nil, fmt.Errorf("send envelope: %w", err)
		}
		if mailRep, err = c.read(); err != nil {
			return nil, fmt.Errorf("read MAIL reply: %w", err)
		}
		for i := range env.To {
			if res.Rcpts[i], err = c.read(); err != nil {
				return nil, fmt.Errorf("read RCPT reply: %w", err)
			}
		}
	} else {
		if mailRep, err = c.cmd(mail); err != nil {
			return nil, err
		}
		if mailRep.Code == 250 {
			for i, to := range env.To {
				if res.Rcpts[i], err = c.cmd("RCPT TO:<" + to + ">"); err != nil {
					return nil, err
				}
			}
		}
	}
	accepted := 0
	for _, r := range res.Rcpts {
		if r.Code/100 == 2 {
			accepted++
		}
	}
	if !pipelining && mailRep.Code == 250 && accepted > 0 {
		c.deadline(c.CommandTimeout)
		c.write("DATA")
		if err := c.w.Flush(); err != nil {
			return nil, fmt.Errorf("send DATA: %w", err)
		}
	}
	var dataRep Reply
	if pipelining || (mailRep.Code == 250 && accepted > 0) {
		if dataRep, err = c.read(); err != nil {
			return nil, fmt.Errorf("read DATA reply: %w", err)
		}
	}
	if mailRep.Code != 250 {
		c.abort(dataRep)
		return res, &Error{Cmd: "MAIL FROM", Reply: mailRep}
	}
	if accepted == 0 {
		c.abort(dataRep)
		return res, nil
	}
	if dataRep.Code != 354 {
		c.reset()
		return res, &Error{Cmd: "DATA", Reply: dataRep}
	}

	c.deadline(c.DataTimeout)
	dw := &dotWriter{w: c.w, bol: true}
	for _, p := range parts {
		if _, err := dw.Write(p); err != nil {
			return nil, fmt.Errorf("send message: %w", err)
		}
	}
	if err := dw.close(); err != nil {
		return nil, fmt.Errorf("send message: %w", err)
	}
	res.DataSent = true
	if err := c.w.Flush(); err != nil {
		return res, fmt.Errorf("send message: %w", err)
	}
	if res.Data, err = c.read(); err != nil {
		return res, fmt.Errorf("read reply to message: %w", err)
	}
	return res, nil
}

// abort ends a transaction that reached no DATA. A pipelined DATA that the server
// nevertheless accepted (354) must be finished with an empty message, which then
// goes to nobody since no recipient was accepted.
func (c *Client) abort(dataRep Reply) {
	if dataRep.Code == 354 {
		c.deadline(c.CommandTimeout)
		c.write(".")
		if c.w.Flush() == nil {
			_, _ = c.read()
		}
	}
	c.reset()
}

func (c *Client) reset() { _, _ = c.cmd("RSET") }

// Reset sends RSET, which must be answered 250 for the connection to be reused.
func (c *Client) Reset(ctx context.Context) error {
	stop := c.watch(ctx)
	defer stop()
	rep, err := c.cmd("RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return &Error{Cmd: "RSET", Reply: rep}
	}
	return nil
}

// Quit says goodbye and closes the connection.
func (c *Client) Quit() error {
	c.deadline(10 * time.Second)
	_, _ = c.cmd("QUIT")
	return c.conn.Close()
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) write(line string) {
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
}

// cmd sends one command and reads its reply; an error means the connection failed.
func (c *Client) cmd(line string) (Reply, error) {
	c.deadline(c.CommandTimeout)
	c.write(line)
	if err := c.w.Flush(); err != nil {
		return Reply{}, fmt.Errorf("send %s: %w", verb(line), err)
	}
	rep, err := c.read()
	if err != nil {
		return Reply{}, fmt.Errorf("read reply to %s: %w", verb(line), err)
	}
	return rep, nil
}

// verb names a command for error messages without leaking its arguments (AUTH).
func verb(line string) string {
	v, _, _ := strings.Cut(line, " ")
	if v == "MAIL" || v == "RCPT" {
		v, _, _ = strings.Cut(line, ":")
	}
	return v
}

// read reads one possibly multi-line reply.
func (c *Client) read() (Reply, error) {
	var rep Reply
	for n := 0; ; n++ {
		if n == maxLines {
			return Reply{}, errors.New("reply has too many lines")
		}
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return Reply{}, fmt.Errorf("reply line longer than %d bytes", maxLine)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 || (len(s) > 3 && s[3] != ' ' && s[3] != '-') {
			return Reply{}, fmt.Errorf("malformed reply line %q", clip(s))
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || code < 200 || code > 599 {
			return Reply{}, fmt.Errorf("malformed reply code in %q", clip(s))
		}
		if n > 0 && code != rep.Code {
			return Reply{}, fmt.Errorf("reply code changes from %d to %d within a reply", rep.Code, code)
		}
		rep.Code = code
		text := ""
		if len(s) > 4 {
			text = s[4:]
		}
		rep.Lines = append(rep.Lines, text)
		if len(s) == 3 || s[3] == ' ' {
			break
		}
	}
	rep.Enhanced = enhanced(rep.Code, rep.Lines[0])
	return rep, nil
}

// enhanced extracts an RFC 3463 code ("class.subject.detail") that agrees with the
// reply code's class.
func enhanced(code int, text string) string {
	word, _, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return word
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// dotWriter writes message data for DATA: bare LF and bare CR become CRLF, a line
// starting with '.' gets another one (RFC 5321 4.5.2), and close ends the data with
// "CRLF.CRLF".
type dotWriter struct {
	w      *bufio.Writer
	bol    bool // at the beginning of a line
	prevCR bool // the last byte written was a CR not yet followed by LF
}

func (d *dotWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if d.prevCR && b != '\n' {
			// A bare CR: finish the line it started.
			if err := d.w.WriteByte('\n'); err != nil {
				return 0, err
			}
			d.bol = true
		}
		switch {
		case b == '\r':
			d.prevCR = true
			if err := d.w.WriteByte('\r'); err != nil {
				return 0, err
			}
			continue
		case b == '\n':
			if !d.prevCR {
				if err := d.w.WriteByte('\r'); err != nil {
					return 0, err
				}
			}
			d.prevCR = false
			d.bol = true
			if err := d.w.WriteByte('\n'); err != nil {
				return 0, err
			}
			continue
		}
		d.prevCR = false
		if d.bol && b == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return 0, err
			}
		}
		d.bol = false
		if err := d.w.WriteByte(b); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (d *dotWriter) close() error {
	var err error
	switch {
	case d.prevCR:
		_, err = d.w.WriteString("\n.\r\n")
	case d.bol:
		_, err = d.w.WriteString(".\r\n")
	default:
		_, err = d.w.WriteString("\r\n.\r\n")
	}
	return err
}
