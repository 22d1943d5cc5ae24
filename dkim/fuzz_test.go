package dkim

import (
	"strings"
	"testing"

	"github.com/coibox/coibox/internal/testutil"
)

func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte(testMsg))
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=a.test;\r\n s=sel; b=abc\r\nFrom: a\r\n\r\nbody"))
	f.Add([]byte("From: a\nSubject: b\n folded\n\nbody\n"))
	f.Add([]byte(" leading continuation\r\nno colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, complete := headerFields(msg)
		want, ok := testutil.HeaderFieldNames(msg)
		if complete != ok {
			t.Fatalf("complete = %v, go-msgauth reads %v", complete, ok)
		}
		if !complete {
			return
		}
		if len(fields) != len(want) {
			t.Fatalf("%d fields, go-msgauth sees %d", len(fields), len(want))
		}
		for i, f := range fields {
			if f.name != want[i] {
				t.Fatalf("field %d: %q vs go-msgauth's %q", i, f.name, want[i])
			}
			tags := parseTags(f.value)
			for k, v := range tags {
				if k == "" || k != strings.TrimSpace(k) || strings.ContainsAny(v, " \t\r\n") {
					t.Fatalf("tag %q=%q not normalized", k, v)
				}
			}
		}
	})
}

func FuzzParseSelectors(f *testing.F) {
	f.Add([]byte("# c\ned25519 ed202607\nrsa rsa202607\n"))
	f.Add([]byte("rsa\x00 a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k, v := range parseSelectors(data) {
			if k == "" || !validSelector(v) {
				t.Fatalf("accepted %q %q", k, v)
			}
		}
	})
}

// The normalized domain becomes a directory name: it must never climb out of the
// store or name a hidden file.
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.org", "Bücher.example.", "../x", "a..b", "_t.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := normalizeDomain(s)
		if err != nil {
			return
		}
		if d == "" || strings.Contains(d, "..") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") ||
			strings.ContainsAny(d, "/\\\x00") || d != strings.ToLower(d) {
			t.Fatalf("normalizeDomain(%q) = %q", s, d)
		}
	})
}
