// Package wire reads IMAP commands and writes IMAP responses (RFC 3501, RFC 9051 and the
// extensions coibox speaks); it knows the grammar, not what the commands mean.
package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits bound what one command may cost the server. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	MaxLine    int   // bytes in one line, literals excluded
	MaxLiteral int64 // sum of literal sizes in one command other than APPEND
	MaxAppend  int64 // sum of literal sizes in one APPEND; the session sets it from its own limit
	MaxDepth   int   // nesting of parenthesised lists and of search keys
	MaxArgs    int   // tokens (atoms, strings, numbers, sets, literals) in one command
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:    64 << 10,
		MaxLiteral: 30 << 20,
		MaxAppend:  30 << 20,
		MaxDepth:   32,
		MaxArgs:    1000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = d.MaxLiteral
	}
	if l.MaxAppend <= 0 {
		l.MaxAppend = d.MaxAppend
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = d.MaxArgs
	}
	return l
}

// LiteralInfo describes a synchronizing literal the client announced.
type LiteralInfo struct {
	Tag, Name string // as far as they could be read from the first line; Name upper case
	Size      int64
	Binary    bool // ~{n}
}

// Reader reads whole commands, literals included, from a client.
type Reader struct {
	// Continue is called before a synchronizing literal is read. It must
	// write the continuation request ("+ Ready for literal data") and flush
	// it. To refuse the literal instead, it returns an *Error without
	// writing anything (e.g. NO [OVERQUOTA] for an APPEND); ReadCommand
	// returns that error and the connection goes on. Other errors are
	// returned wrapped.
	Continue func(ctx context.Context, lit LiteralInfo) error
	Limits   Limits
	// UTF8 says mailbox names are UTF-8 (IMAP4rev2, UTF8=ACCEPT) rather than
	// modified UTF-7.
	UTF8 bool

	br *bufio.Reader
}

// NewReader returns a Reader reading from r, which it buffers unless r is
// already a *bufio.Reader.
func NewReader(r io.Reader, lim Limits) *Reader {
	rd := &Reader{Limits: lim}
	rd.Reset(r)
	return rd
}

// Reset makes the Reader read from src, e.g. after STARTTLS or COMPRESS.
// Bytes still buffered from the old source are not read any more; src may
// itself read from BufferedReader, so a new buffer is made rather than the
// old one reset.
func (r *Reader) Reset(src io.Reader) {
	if br, ok := src.(*bufio.Reader); ok {
		r.br = br
		return
	}
	r.br = bufio.NewReaderSize(src, 16<<10)
}

// Buffered returns the number of bytes read from the source but not yet
// consumed; STARTTLS must refuse to switch when it is not zero (RFC 9051 §11.1).
func (r *Reader) Buffered() int { return r.br.Buffered() }

// BufferedReader returns the underlying buffered reader, so that COMPRESS can
// layer a decompressor over it without losing buffered bytes.
func (r *Reader) BufferedReader() *bufio.Reader { return r.br }

// literal is one literal of a command: its bytes and the offset in the
// command's line text just after its {n} marker.
type literal struct {
	pos    int
	data   []byte
	binary bool
}

// errLineTooLong is returned by readLine after it discarded the rest of an
// over-long line; tail is the end of that line, to look for a literal marker.
type errLineTooLong struct{ tail []byte }

func (errLineTooLong) Error() string { return "line too long" }

// ReadLine reads one line (for IDLE's DONE and AUTHENTICATE responses),
// without its line ending. A bare LF ends a line as well as CRLF.
func (r *Reader) ReadLine(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	lim := r.Limits.withDefaults()
	b, err := r.readLine(nil, lim.MaxLine)
	var tl errLineTooLong
	if errors.As(err, &tl) {
		return "", &Error{Tag: "*", Status: BAD, Text: fmt.Sprintf("line too long (limit %d bytes)", lim.MaxLine)}
	}
	if err != nil {
		return "", fmt.Errorf("read line: %w", err)
	}
	return string(b), nil
}

// readLine appends one line to dst without its CRLF or LF. A line longer
// than max is read to its end and discarded.
func (r *Reader) readLine(dst []byte, max int) ([]byte, error) {
	start := len(dst)
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(dst)-start+len(frag) > max+2 {
			tail := append([]byte(nil), lastBytes(frag, 32)...)
			// Keep the head of the line: its tag labels the error.
			dst = append(dst, frag[:min(len(frag), max-(len(dst)-start))]...)
			for err == bufio.ErrBufferFull {
				frag, err = r.br.ReadSlice('\n')
				if len(frag) >= 32 {
					tail = append(tail[:0], lastBytes(frag, 32)...)
				} else {
					tail = append(lastBytes(tail, 32-len(frag)), frag...)
				}
			}
			if err != nil {
				return dst, err
			}
			return dst, errLineTooLong{tail: trimEOL(tail)}
		}
		dst = append(dst, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF && len(dst) > start {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
	}
	return dst[:start+len(trimEOL(dst[start:]))], nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// literalMarker reports whether line ends with a literal announcement:
// "{n}", "{n+}", "~{n}" or "~{n+}". tooBig is set when n does not fit.
func literalMarker(line []byte) (size int64, sync, binary, ok, tooBig bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false, false, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, false, false, false
	}
	digits := line[open+1 : len(line)-1]
	sync = true
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		sync = false
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return 0, false, false, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, false, false, false
		}
	}
	binary = open > 0 && line[open-1] == '~'
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, sync, binary, true, true
	}
	return n, sync, binary, true, false
}

// peekTagName reads the tag and the command name from a command's first
// line, leniently: they only choose the literal limit and label errors
// found before the command is parsed for real.
func peekTagName(line []byte) (tag, name string) {
	f := strings.Fields(string(lastLine(line)))
	if len(f) > 0 && validTag(f[0]) {
		tag = f[0]
	} else {
		return "*", ""
	}
	if len(f) > 1 {
		name = strings.ToUpper(f[1])
		if name == "UID" && len(f) > 2 {
			name = strings.ToUpper(f[2])
		}
	}
	return tag, name
}

func lastLine(b []byte) []byte {
	if len(b) > 256 {
		return b[:256]
	}
	return b
}

func validTag(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAStringChar(s[i]) || s[i] == '+' {
			return false
		}
	}
	return true
}

// ReadCommand reads the next command with all its literals and splits off
// its tag and name. Errors of type *Error carry the response to send; any
// other error is an I/O error and ends the session. Blocking reads are not
// interrupted by ctx: the session closes the connection or sets a deadline.
func (r *Reader) ReadCommand(ctx context.Context) (*Command, error) {
	lim := r.Limits.withDefaults()
	var (
		buf       []byte
		lits      []literal
		total     int64
		tag, name string
	)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n0 := len(buf)
		var err error
		// MaxLine bounds the text of the whole command, so that a command
		// split by many literals cannot grow without limit.
		buf, err = r.readLine(buf, lim.MaxLine-n0)
		var tl errLineTooLong
		if errors.As(err, &tl) {
			if n0 == 0 {
				tag, _ = peekTagName(buf)
			}
			e := &Error{Tag: tag, Status: BAD, Text: fmt.Sprintf("line too long (limit %d bytes)", lim.MaxLine)}
			if _, sync, _, ok, _ := literalMarker(tl.tail); ok && !sync {
				// The literal's bytes are on their way and cannot be told
				// apart from commands.
				e.Fatal = true
			}
			return nil, e
		}
		if err != nil {
			return nil, fmt.Errorf("read command: %w", err)
		}
		if n0 == 0 {
			if len(buf) == 0 || len(bytes.TrimSpace(buf)) == 0 {
				// Tolerate empty lines between commands, as other servers do.
				buf = buf[:0]
				continue
			}
			tag, name = peekTagName(buf)
		}
		size, sync, binary, ok, tooBig := literalMarker(buf[n0:])
		if !ok {
			break
		}
		max := lim.MaxLiteral
		if name == "APPEND" {
			max = lim.MaxAppend
		}
		if len(lits) >= lim.MaxArgs {
			return nil, &Error{Tag: tag, Status: BAD, Text: fmt.Sprintf("too many literals (limit %d)", lim.MaxArgs), Fatal: !sync}
		}
		if tooBig || size > max-total {
			e := &Error{Tag: tag, Status: BAD, Text: fmt.Sprintf("literal too large (limit %d bytes)", max), Fatal: !sync}
			if name == "APPEND" {
				e.Status, e.Code = NO, CodeTooBig
				e.Text = fmt.Sprintf("message too large (limit %d bytes)", max)
			}
			return nil, e
		}
		if sync && r.Continue != nil {
			if err := r.Continue(ctx, LiteralInfo{Tag: tag, Name: name, Size: size, Binary: binary}); err != nil {
				if e, ok := AsError(err); ok {
					// Refused (e.g. over quota): the client was not
					// told to go on, so it abandons the command.
					return nil, e
				}
				return nil, fmt.Errorf("send continuation: %w", err)
			}
		}
		data, err := r.readLiteral(size)
		if err != nil {
			return nil, fmt.Errorf("read literal: %w", err)
		}
		lits = append(lits, literal{pos: len(buf), data: data, binary: binary})
		total += size
	}
	return parseCommand(buf, lits, lim, r.UTF8)
}

// readLiteral reads n bytes. Large literals grow their buffer as bytes
// arrive, so announcing a big literal and stalling costs the server little.
func (r *Reader) readLiteral(n int64) ([]byte, error) {
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(r.br, b)
		return b, err
	}
	var bb bytes.Buffer
	m, err := io.CopyN(&bb, r.br, n)
	if err == io.EOF && m < n {
		err = io.ErrUnexpectedEOF
	}
	return bb.Bytes(), err
}
