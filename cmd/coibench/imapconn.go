package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// imapConn is a minimal IMAP client over implicit TLS. It writes a command and reads to
// its tagged response, finding response boundaries (literals included) but parsing
// nothing else, so that the benchmark's figures are the server's and not a client
// library's: decoding 10,000 envelopes into structs would cost about as much as
// producing them.
type imapConn struct {
	conn    net.Conn
	r       *bufio.Reader
	tag     int
	timeout time.Duration
	scratch []byte // holds a line longer than r's buffer
}

// imapReply is what one command brought back.
type imapReply struct {
	Status   string // the tagged line after the tag: "OK …", "NO …", "BAD …"
	Untagged int    // untagged responses ("* …"), each counted once whatever its literals
	Bytes    int64  // every byte read for the command, the tagged line included
}

// dialIMAP connects to an implicit-TLS IMAP listener (port 993) from localIP (""
// lets the system choose) and reads the greeting.
func dialIMAP(ctx context.Context, addr, localIP string, timeout time.Duration) (*imapConn, error) {
	return dialIMAPBuf(ctx, addr, localIP, timeout, 64<<10)
}

// dialIMAPBuf is dialIMAP with a read buffer of bufSize bytes: small for the many
// connections that only idle, so that the client holding 10,000 of them stays small
// (longer lines still work, through scratch).
func dialIMAPBuf(ctx context.Context, addr, localIP string, timeout time.Duration, bufSize int) (*imapConn, error) {
	d := net.Dialer{Timeout: timeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial imap %s: %w", addr, err)
	}
	// The servers benchmarked have self-signed certificates (a started one always
	// does); the connection is encrypted as a client's would be, which is the cost
	// measured, and who holds the key does not matter here.
	tc := tls.Client(raw, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	c := &imapConn{conn: tc, r: bufio.NewReaderSize(tc, bufSize), timeout: timeout}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("imap tls handshake: %w", err)
	}
	greet, err := c.readLine()
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("read imap greeting: %w", err)
	}
	if !bytes.HasPrefix(greet, []byte("* OK")) {
		tc.Close()
		return nil, fmt.Errorf("imap greeting: %q", strings.TrimSpace(string(greet)))
	}
	return c, nil
}

func (c *imapConn) Close() error { return c.conn.Close() }

// readLine returns the next line, CRLF included. The slice is valid until the next read.
func (c *imapConn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == nil {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	// A line longer than the buffer (a SEARCH answer with many UIDs).
	c.scratch = append(c.scratch[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = c.r.ReadSlice('\n')
		c.scratch = append(c.scratch, line...)
	}
	return c.scratch, err
}

// literalSize reads the size of a literal that ends line ("{123}\r\n" or "~{123}\r\n").
func literalSize(line []byte) (int, bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[i+1 : len(line)-1]))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// cmd sends a command and reads its responses up to the tagged one. each, if set, sees
// the first line of every untagged response (valid only during the call). A tagged
// response other than OK is an error. Literals are skipped unread.
func (c *imapConn) cmd(each func(line []byte), format string, args ...any) (imapReply, error) {
	return c.command(each, nil, format, args...)
}

// command is cmd that, when literal is set, reads every literal and hands it over
// (valid only during the call) instead of skipping it.
func (c *imapConn) command(each, literal func([]byte), format string, args ...any) (imapReply, error) {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag) + " "
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	command := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(c.conn, tag+command+"\r\n"); err != nil {
		return imapReply{}, fmt.Errorf("send %s: %w", verb(command), err)
	}
	var rep imapReply
	inLiteralTail := false // the line continues a response after a literal
	for {
		line, err := c.readLine()
		if err != nil {
			return rep, fmt.Errorf("read reply to %s: %w", verb(command), err)
		}
		rep.Bytes += int64(len(line))
		if !inLiteralTail {
			switch {
			case bytes.HasPrefix(line, []byte(tag)):
				rep.Status = strings.TrimSpace(string(line[len(tag):]))
				if !strings.HasPrefix(rep.Status, "OK") {
					return rep, fmt.Errorf("%s: %s", verb(command), rep.Status)
				}
				return rep, nil
			case bytes.HasPrefix(line, []byte("* ")):
				rep.Untagged++
				if each != nil {
					each(line)
				}
			}
		}
		inLiteralTail = false
		if n, ok := literalSize(line); ok {
			if literal == nil {
				_, err = c.r.Discard(n)
			} else {
				c.scratch = slices.Grow(c.scratch[:0], n)[:n]
				if _, err = io.ReadFull(c.r, c.scratch); err == nil {
					literal(c.scratch)
				}
			}
			if err != nil {
				return rep, fmt.Errorf("read reply to %s: %w", verb(command), err)
			}
			rep.Bytes += int64(n)
			inLiteralTail = true
		}
	}
}

// verb names a command in errors without its arguments (a LOGIN's password).
func verb(command string) string {
	f := strings.Fields(command)
	switch {
	case len(f) == 0:
		return "command"
	case len(f) > 1 && strings.EqualFold(f[0], "UID"):
		return "UID " + f[1]
	}
	return f[0]
}

// quoteIMAP renders s as an IMAP quoted string.
func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (c *imapConn) login(user, password string) error {
	_, err := c.cmd(nil, "LOGIN %s %s", quoteIMAP(user), quoteIMAP(password))
	return err
}

// selectBox selects a mailbox and returns its EXISTS count.
func (c *imapConn) selectBox(name string) (exists int, rep imapReply, err error) {
	exists = -1
	rep, err = c.cmd(func(line []byte) {
		if n, ok := existsCount(line); ok {
			exists = n
		}
	}, "SELECT %s", quoteIMAP(name))
	if err == nil && exists < 0 {
		err = fmt.Errorf("SELECT %s: no EXISTS response", name)
	}
	return exists, rep, err
}

// existsCount parses "* 123 EXISTS".
func existsCount(line []byte) (int, bool) {
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "*" || !strings.EqualFold(f[2], "EXISTS") {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// searchCount runs a UID SEARCH and returns how many UIDs it found.
func (c *imapConn) searchCount(criteria string) (found int, rep imapReply, err error) {
	rep, err = c.cmd(func(line []byte) {
		if rest, ok := bytes.CutPrefix(line, []byte("* SEARCH")); ok {
			found += len(bytes.Fields(rest))
		}
	}, "UID SEARCH %s", criteria)
	return found, rep, err
}

// idle sends IDLE and waits for the server's continuation. Afterwards the connection
// only reads (see watchExists) until done.
func (c *imapConn) idle() error {
	c.tag++
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := fmt.Fprintf(c.conn, "b%d IDLE\r\n", c.tag); err != nil {
		return fmt.Errorf("send IDLE: %w", err)
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("read reply to IDLE: %w", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			_ = c.conn.SetDeadline(time.Time{})
			return nil
		case bytes.HasPrefix(line, []byte("* ")):
		default:
			return fmt.Errorf("IDLE: %s", strings.TrimSpace(string(line)))
		}
	}
}

// existsEvent is one "* N EXISTS" and when the client had read it.
type existsEvent struct {
	n  int
	at time.Time
}

// watchExists reads an idling connection until it fails (closed) or the IDLE ends
// (after DONE), sending every EXISTS with the time it was read. It returns nil when the
// IDLE ended with OK; the connection can then take commands again.
func (c *imapConn) watchExists(out chan<- existsEvent) error {
	tag := []byte("b" + strconv.Itoa(c.tag) + " ")
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		at := time.Now()
		if n, ok := existsCount(line); ok {
			out <- existsEvent{n, at}
		}
		if rest, ok := bytes.CutPrefix(line, tag); ok {
			if status := strings.TrimSpace(string(rest)); !strings.HasPrefix(status, "OK") {
				return fmt.Errorf("IDLE: %s", status)
			}
			return nil
		}
	}
}
