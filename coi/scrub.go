package coi

import (
	"bytes"
	"strings"
)

// The header fields chatmail removes (§7.3): on submission, those that tell who sent
// from where with what; on final delivery, the traces of the way the message came.
var (
	submissionDrop = []string{"received", "x-originating-ip", "x-mailer", "user-agent"}
	deliveryDrop   = []string{"dkim-signature", "authentication-results", "received"}
)

// scrubSubmission removes identifying fields and hides the Subject as "[...]".
func scrubSubmission(msg []byte) []byte {
	return rewriteHeader(msg, func(name string) (drop bool, replace string) {
		for _, d := range submissionDrop {
			if name == d {
				return true, ""
			}
		}
		if name == "subject" {
			return false, "Subject: [...]\r\n"
		}
		return false, ""
	})
}

// scrubDelivery removes the trace fields of a delivered message.
func scrubDelivery(msg []byte) []byte {
	return rewriteHeader(msg, func(name string) (bool, string) {
		for _, d := range deliveryDrop {
			if name == d {
				return true, ""
			}
		}
		return false, ""
	})
}

// rewriteHeader copies msg with each header field (folded lines included) dropped or
// replaced as decide says; the body is copied unchanged. decide gets the field name
// in lower case. Lines are CRLF-terminated (the pipeline normalised them).
func rewriteHeader(msg []byte, decide func(name string) (drop bool, replace string)) []byte {
	out := make([]byte, 0, len(msg))
	i := 0
	for i < len(msg) {
		end := bytes.Index(msg[i:], []byte("\r\n"))
		if end < 0 {
			break // a header section without its end: copy the rest as it is
		}
		if end == 0 {
			break // the empty line: the body follows
		}
		// The field runs on over continuation lines (starting with space or tab).
		j := i + end + 2
		for j < len(msg) && (msg[j] == ' ' || msg[j] == '\t') {
			k := bytes.Index(msg[j:], []byte("\r\n"))
			if k < 0 {
				j = len(msg)
				break
			}
			j += k + 2
		}
		field := msg[i:j]
		name, _, ok := bytes.Cut(field, []byte(":"))
		if !ok {
			out = append(out, field...)
			i = j
			continue
		}
		drop, replace := decide(strings.ToLower(string(bytes.TrimSpace(name))))
		switch {
		case drop:
		case replace != "":
			out = append(out, replace...)
		default:
			out = append(out, field...)
		}
		i = j
	}
	return append(out, msg[i:]...)
}

// headerValue returns the unfolded value of the first field called name, "" if
// there is none.
func headerValue(msg []byte, name string) string {
	var value string
	found := false
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	lines := strings.Split(string(msg[:end]), "\r\n")
	for _, l := range lines {
		if found && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) {
			value += " " + strings.TrimSpace(l)
			continue
		}
		if found {
			break
		}
		if n, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			value, found = strings.TrimSpace(v), true
		}
	}
	return value
}
