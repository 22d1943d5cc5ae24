package mxdeliv

import (
	"strings"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/metrics"
)

// The request headers of §11.1. Go canonicalises names it receives, so lookups use
// the canonical form; the client sends the spec's spelling, for peers that match it
// literally.
const (
	HeaderFrom = "X-MAIL-FROM"
	HeaderTo   = "X-MAIL-TO"
)

// MaxRecipients is the most X-MAIL-TO values a request may carry, the pipeline's
// default per-transaction limit; more are refused before any is looked up.
const MaxRecipients = 1000

// maxAddressLen bounds one address: RFC 5321 4.5.3.1.3 allows a path of 256 octets.
const maxAddressLen = 256

var (
	errTooManyRcpts = &deliver.Reply{Code: 452, Enhanced: [3]int{4, 5, 3}, Message: "Too many recipients", Reason: metrics.ReasonTooManyRcpts}
	errBadRcpt      = &deliver.Reply{Code: 501, Enhanced: [3]int{5, 1, 3}, Message: "Bad recipient address syntax", Reason: metrics.ReasonSyntax}
	errNoRcpts      = &deliver.Reply{Code: 554, Enhanced: [3]int{5, 5, 1}, Message: "No valid recipients", Reason: metrics.ReasonPolicy}
	errBadSender    = &deliver.Reply{Code: 501, Enhanced: [3]int{5, 1, 7}, Message: "Bad sender address syntax", Reason: metrics.ReasonSyntax}
	errManySenders  = &deliver.Reply{Code: 501, Enhanced: [3]int{5, 5, 4}, Message: "More than one " + HeaderFrom + " header", Reason: metrics.ReasonSyntax}
)

// parseRecipients returns the addresses named by the X-MAIL-TO values: each value
// split on commas, each element trimmed of spaces and of one pair of angle brackets.
// Empty elements (a trailing comma) are skipped. More than limit addresses is
// errTooManyRcpts, found without scanning past the first limit+1; an element that is
// not a plausible address is errBadRcpt. Duplicates are kept: the pipeline accepts
// a recipient given twice once.
func parseRecipients(values []string, limit int) ([]string, error) {
	var out []string
	for _, v := range values {
		for v != "" {
			elem := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				elem, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			a, ok := cleanAddress(elem)
			if !ok {
				return nil, errBadRcpt
			}
			if a == "" {
				continue
			}
			if len(out) == limit {
				return nil, errTooManyRcpts
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// parseSender returns the envelope sender of the X-MAIL-FROM values: none, an empty
// value or "<>" is the null sender.
func parseSender(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		// Two senders are ambiguous: a filter might judge one and a bounce go to
		// the other.
		return "", errManySenders
	}
	a, ok := cleanAddress(values[0])
	if !ok {
		return "", errBadSender
	}
	return a, nil
}

// cleanAddress trims s of surrounding spaces and one pair of angle brackets. It
// returns "" for an empty address and false for one that is not user@domain of
// printable characters without spaces, angle brackets or commas: such text would be
// a different address to every reader (logs, Received fields, the store).
func cleanAddress(s string) (string, bool) {
	s = strings.Trim(s, " \t")
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") && len(s) >= 2 {
		s = strings.Trim(s[1:len(s)-1], " \t")
	}
	if s == "" {
		return "", true
	}
	if len(s) > maxAddressLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' {
			return "", false
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", false
	}
	return s, true
}
