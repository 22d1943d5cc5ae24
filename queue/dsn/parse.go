package dsn

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// ErrNotDSN is returned by Parse for messages that are not delivery status reports.
var ErrNotDSN = errors.New("not a delivery status notification")

// maxPart bounds how much of one MIME part Parse reads: reports are small, and a
// hostile message must not make the parser buffer without limit.
const maxPart = 1 << 20

// Report is a parsed DSN.
type Report struct {
	// Header is the report message's own header.
	Header mail.Header
	// Text is the human-readable first part.
	Text         string
	ReportingMTA string
	ArrivalDate  time.Time
	Recipients   []Recipient
	// OriginalHeader is the returned header section of the original message.
	OriginalHeader []byte
}

// Parse reads a multipart/report; report-type=delivery-status message.
func Parse(msg []byte) (*Report, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		return nil, ErrNotDSN
	}
	if params["boundary"] == "" {
		return nil, fmt.Errorf("parse dsn: multipart/report without boundary")
	}
	rep := &Report{Header: m.Header}
	mr := multipart.NewReader(m.Body, params["boundary"])
	sawStatus := false
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse dsn: part %d: %w", i+1, err)
		}
		body, err := partBody(p)
		if err != nil {
			return nil, fmt.Errorf("parse dsn: part %d: %w", i+1, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if pt == "" {
			pt = "text/plain"
		}
		switch pt {
		case "message/delivery-status", "message/global-delivery-status":
			if err := rep.parseStatus(body); err != nil {
				return nil, fmt.Errorf("parse dsn: %w", err)
			}
			sawStatus = true
		case "text/rfc822-headers", "message/global-headers":
			rep.OriginalHeader = body
		case "message/rfc822", "message/global":
			rep.OriginalHeader = HeaderSection(body)
		default:
			if i == 0 && strings.HasPrefix(pt, "text/") {
				rep.Text = string(body)
			}
		}
	}
	if !sawStatus {
		return nil, fmt.Errorf("parse dsn: no delivery-status part")
	}
	return rep, nil
}

// partBody reads a part, undoing the transfer encodings a report may use.
func partBody(p *multipart.Part) ([]byte, error) {
	var r io.Reader = io.LimitReader(p, maxPart)
	switch strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	return io.ReadAll(r)
}

// parseStatus reads the per-message field group and the per-recipient groups that
// follow it, each ended by a blank line.
func (rep *Report) parseStatus(body []byte) error {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	first := true
	for {
		h, err := tr.ReadMIMEHeader()
		if err != nil && err != io.EOF {
			return fmt.Errorf("read status fields: %w", err)
		}
		if len(h) > 0 {
			if first {
				rep.ReportingMTA = stripType(h.Get("Reporting-MTA"))
				rep.ArrivalDate = parseDate(h.Get("Arrival-Date"))
				first = false
			} else {
				rep.Recipients = append(rep.Recipients, Recipient{
					FinalRecipient:    stripType(h.Get("Final-Recipient")),
					OriginalRecipient: stripType(h.Get("Original-Recipient")),
					Action:            Action(strings.ToLower(strings.TrimSpace(h.Get("Action")))),
					Status:            strings.TrimSpace(h.Get("Status")),
					RemoteMTA:         stripType(h.Get("Remote-MTA")),
					DiagnosticCode:    stripType(h.Get("Diagnostic-Code")),
					LastAttempt:       parseDate(h.Get("Last-Attempt-Date")),
					WillRetryUntil:    parseDate(h.Get("Will-Retry-Until")),
				})
			}
		}
		if err == io.EOF {
			break
		}
	}
	if first {
		return errors.New("empty delivery-status part")
	}
	return nil
}

// stripType removes the "type;" prefix of typed fields ("rfc822; a@b", "smtp; 550 …").
func stripType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

func parseDate(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// newlineStripper drops CR and LF so base64 lines decode as one stream.
type newlineStripper struct{ r io.Reader }

func (s newlineStripper) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
