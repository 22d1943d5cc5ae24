// Package mtasts is the sending side of SMTP MTA Strict Transport Security (RFC 8461):
// it discovers, fetches, validates and caches recipient domains' TLS policies.
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 3.2).
type Mode string

// The policy modes.
const (
	// Enforce: deliver only to matching MX hosts over TLS with a valid certificate.
	Enforce Mode = "enforce"
	// Testing: report failures (we log them) but deliver anyway.
	Testing Mode = "testing"
	// None: the domain has withdrawn its policy.
	None Mode = "none"
)

const (
	// maxPolicySize is the largest policy body accepted; RFC 8461 3.3 lets senders
	// refuse bigger ones and 64 KiB is far beyond any real policy.
	maxPolicySize = 64 << 10
	// MaxMaxAge is the largest max_age a policy may carry (RFC 8461 3.2: one year).
	MaxMaxAge = 31557600
)

// Policy is a parsed, validated MTA-STS policy.
type Policy struct {
	Mode Mode
	// MX are the allowed MX host patterns, lower-case, without trailing dots;
	// "*.example.org" matches exactly one label in place of the star.
	MX     []string
	MaxAge time.Duration
}

// Parse reads and validates a policy body (RFC 8461 3.2). Lines end with CRLF or LF;
// unknown fields are ignored; of fields given twice (except mx) the first counts.
func Parse(body []byte) (*Policy, error) {
	if len(body) > maxPolicySize {
		return nil, fmt.Errorf("parse mta-sts policy: larger than %d bytes", maxPolicySize)
	}
	var (
		p                     Policy
		version, mode, maxAge string
		haveVersion, haveMode bool
		haveMaxAge            bool
	)
	for n, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("parse mta-sts policy: line %d: no ':' in %q", n+1, clip(line))
		}
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("parse mta-sts policy: line %d: bad field name %q", n+1, clip(key))
		}
		value = strings.Trim(value, " \t")
		switch key {
		case "version":
			if !haveVersion {
				version, haveVersion = value, true
			}
		case "mode":
			if !haveMode {
				mode, haveMode = value, true
			}
		case "max_age":
			if !haveMaxAge {
				maxAge, haveMaxAge = value, true
			}
		case "mx":
			pat, err := parseMXPattern(value)
			if err != nil {
				return nil, fmt.Errorf("parse mta-sts policy: line %d: %w", n+1, err)
			}
			p.MX = append(p.MX, pat)
		}
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("parse mta-sts policy: version %q, want STSv1", clip(version))
	}
	switch Mode(mode) {
	case Enforce, Testing, None:
		p.Mode = Mode(mode)
	default:
		return nil, fmt.Errorf("parse mta-sts policy: mode %q is not enforce, testing or none", clip(mode))
	}
	if !haveMaxAge {
		return nil, errors.New("parse mta-sts policy: max_age missing")
	}
	secs, err := parseMaxAge(maxAge)
	if err != nil {
		return nil, fmt.Errorf("parse mta-sts policy: %w", err)
	}
	p.MaxAge = time.Duration(secs) * time.Second
	// A policy that is not "none" must name its MX hosts: without any, enforce would
	// refuse every host, which is never what a domain means.
	if p.Mode != None && len(p.MX) == 0 {
		return nil, fmt.Errorf("parse mta-sts policy: mode %s without mx", p.Mode)
	}
	return &p, nil
}

// parseMaxAge accepts 1*10DIGIT up to MaxMaxAge.
func parseMaxAge(s string) (int64, error) {
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("max_age %q is not a number of seconds", clip(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxMaxAge {
		return 0, fmt.Errorf("max_age %q exceeds %d", s, MaxMaxAge)
	}
	return n, nil
}

// parseMXPattern validates "host.name" or "*.host.name".
func parseMXPattern(s string) (string, error) {
	pat := strings.ToLower(strings.TrimSuffix(s, "."))
	name := strings.TrimPrefix(pat, "*.")
	if name == "" || !validHostname(name) {
		return "", fmt.Errorf("mx pattern %q is not a host name", clip(s))
	}
	return pat, nil
}

func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Match reports whether the MX host name matches one of the policy's patterns. A
// wildcard stands for exactly one label: "*.example.org" matches "mx.example.org" but
// neither "example.org" nor "a.mx.example.org" (RFC 8461 4.1).
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// String renders the policy in its wire format; Parse(p.String()) == p.
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\nmode: " + string(p.Mode) + "\r\n")
	for _, mx := range p.MX {
		b.WriteString("mx: " + mx + "\r\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(int64(p.MaxAge/time.Second), 10) + "\r\n")
	return b.String()
}

// ParseRecord reads the "_mta-sts" TXT record ("v=STSv1; id=20160831085700Z;") and
// returns its id (RFC 8461 3.1).
func ParseRecord(txt string) (id string, err error) {
	fields := strings.Split(txt, ";")
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-1 {
				continue // trailing ';'
			}
			return "", fmt.Errorf("parse mta-sts record: empty field in %q", clip(txt))
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", fmt.Errorf("parse mta-sts record: field %q without '='", clip(f))
		}
		switch {
		case i == 0:
			if k != "v" || v != "STSv1" {
				return "", fmt.Errorf("parse mta-sts record: %q does not start with v=STSv1", clip(txt))
			}
		case k == "id" && id == "":
			if v == "" || len(v) > 32 || !alnum(v) {
				return "", fmt.Errorf("parse mta-sts record: id %q is not 1 to 32 letters and digits", clip(v))
			}
			id = v
		}
	}
	if id == "" {
		return "", fmt.Errorf("parse mta-sts record: no id in %q", clip(txt))
	}
	return id, nil
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// clip shortens hostile input quoted in error messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
