package mxdeliv

import (
	"slices"
	"strings"
	"testing"
)

// FuzzRecipients feeds X-MAIL-TO values (one per line of the input) and X-MAIL-FROM
// (the first line) to the parsers. Whatever the input, they must not panic, must
// respect the recipient limit, and must only return addresses that read the same
// to everyone downstream: parsing the output again gives the output.
func FuzzRecipients(f *testing.F) {
	for _, s := range []string{
		"bob@example.org",
		"<bob@example.org>, carol@example.org\ndave@example.org,",
		" <  bob@example.org  > ",
		",,,\n\n,",
		"<>",
		"bob",
		"@example.org",
		"bob@",
		"bob smith@example.org",
		"<bob@example.org",
		"bob@example.org>",
		"\"a,b\"@example.org",
		"bob@example.org\r\nX-Injected: 1",
		"<<bob@example.org>>",
		"ünïcode@exämple.org",
		strings.Repeat("a", 300) + "@example.org",
		strings.Repeat("x@y,", 1001),
	} {
		f.Add(s)
	}
	const limit = 5
	f.Fuzz(func(t *testing.T, in string) {
		values := strings.Split(in, "\n")
		rcpts, err := parseRecipients(values, limit)
		if err != nil {
			if err != errTooManyRcpts && err != errBadRcpt {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if len(rcpts) > limit {
				t.Fatalf("%d recipients over the limit %d", len(rcpts), limit)
			}
			for _, a := range rcpts {
				if a == "" || strings.ContainsAny(a, ", \t\r\n<>\x00") || len(a) > maxAddressLen || !strings.Contains(a, "@") {
					t.Fatalf("returned %q", a)
				}
			}
			again, err := parseRecipients([]string{strings.Join(rcpts, ",")}, limit)
			if err != nil || !slices.Equal(again, rcpts) {
				t.Fatalf("reparsing %q gives %q, %v", rcpts, again, err)
			}
		}
		sender, err := parseSender(values[:1])
		if err == nil {
			if strings.ContainsAny(sender, ", \t\r\n<>\x00") {
				t.Fatalf("sender %q", sender)
			}
			if again, err := parseSender([]string{sender}); err != nil || again != sender {
				t.Fatalf("reparsing sender %q gives %q, %v", sender, again, err)
			}
		} else if err != errBadSender {
			t.Fatalf("unexpected sender error %v", err)
		}
	})
}
