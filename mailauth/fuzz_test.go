package mailauth

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coibox/coibox/internal/testutil"
)

// FuzzScanHeader checks scanHeader against the way go-msgauth reads a header (the
// order of DKIM-Signature fields must agree) and that its offsets tile the header.
func FuzzScanHeader(f *testing.F) {
	f.Add([]byte(message("a@a.test")))
	f.Add([]byte("DKIM-Signature: v=1; d=a.test;\r\n s=x\r\nFrom: a\n\nbody"))
	f.Add([]byte(" cont\r\nno colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, complete := scanHeader(msg)
		names, ok := testutil.HeaderFieldNames(msg)
		if complete != ok {
			t.Fatalf("complete = %v, textproto says %v", complete, ok)
		}
		pos := 0
		for _, f := range fields {
			if f.start != pos || f.end < f.start || f.end > len(msg) {
				t.Fatalf("field %q spans [%d,%d), expected start %d", f.name, f.start, f.end, pos)
			}
			pos = f.end
			parseTags(string(f.value))
		}
		if !complete {
			return
		}
		if len(fields) != len(names) {
			t.Fatalf("%d fields, textproto sees %d", len(fields), len(names))
		}
		for i := range fields {
			// Names with line breaks inside (fields without a colon) match nothing
			// either way; only their line-end style may differ.
			if strings.ReplaceAll(fields[i].name, "\r", "") != strings.ReplaceAll(names[i], "\r", "") {
				t.Fatalf("field %d named %q, textproto says %q", i, fields[i].name, names[i])
			}
		}
	})
}

// FuzzStripForged checks that stripping removes exactly our fields, keeps everything
// else byte for byte, and is idempotent.
func FuzzStripForged(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.test; none\r\nFrom: a\r\n\r\nbody"), "mx.test")
	f.Add([]byte("Authentication-Results: (c (nested)) \"mx.test\" 1;\r\n dkim=pass\r\n\r\n"), "mx.test")
	f.Fuzz(func(t *testing.T, msg []byte, host string) {
		out := StripForged(msg, host)
		again := StripForged(out, host)
		if !bytes.Equal(out, again) {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
		if len(out) > len(msg) {
			t.Fatalf("grew: %q", out)
		}
		fields, _ := scanHeader(msg)
		var want []byte
		last := 0
		for _, f := range fields {
			if strings.TrimSuffix(host, ".") != "" && strings.EqualFold(f.name, "Authentication-Results") &&
				strings.EqualFold(strings.TrimSuffix(authservID(f.value), "."), strings.TrimSuffix(host, ".")) {
				want = append(want, msg[last:f.start]...)
				last = f.end
			}
		}
		want = append(want, msg[last:]...)
		if !bytes.Equal(out, want) {
			t.Fatalf("StripForged = %q, want %q", out, want)
		}
	})
}

// FuzzAuthservID checks that what Header writes as authserv-id reads back the same.
func FuzzAuthservID(f *testing.F) {
	for _, s := range []string{"mx.example.org", `we"ird\`, "", "(x) y", "a b;c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = authservID([]byte(s))
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == utf8.RuneError }) {
			return
		}
		if got := authservID([]byte(" " + pvalue(s) + ";\r\n spf=none")); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

// FuzzFromDomains feeds arbitrary From values; domains must come out clean.
func FuzzFromDomains(f *testing.F) {
	for _, s := range []string{"a@b.test", "\"A, B\" <a@b.test>, c@d.test", "=?x?q?J=F6?= <a@B.TEST>", "J. Doe <j@x.test>", "<@>", "x@[192.0.2.1]", "undisclosed-recipients:;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range fromDomains(s) {
			if d == "" || strings.ContainsAny(d, " \t\r\n<>,;\"") || d != strings.ToLower(d) {
				t.Fatalf("fromDomains(%q) gave %q", s, d)
			}
		}
	})
}

// FuzzHeader checks that hostile values cannot break out of the field.
func FuzzHeader(f *testing.F) {
	f.Add("mx.test", "a@b.test", "helo", "d.test", "sel", "rsa-sha256", "reason", "from.test")
	f.Add("mx\r\nX: y", "a\r\n@b", "\n", "\"", "\\", ";", "x\r\n\r\nbody", "(")
	f.Fuzz(func(t *testing.T, host, mailFrom, helo, d, sel, algo, reason, from string) {
		v := Verdict{
			authservID: host,
			SPF:        SPFResult{Result: Pass, MailFrom: mailFrom, Helo: helo},
			DKIM:       []DKIMResult{{Domain: d, Selector: sel, Algorithm: algo, Status: Fail, Reason: reason}},
			DMARC:      DMARCResult{Result: Fail, Policy: PolicyReject, From: from},
		}
		checkField(t, v.Header())
	})
}
