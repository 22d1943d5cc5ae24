package coiext

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/coibox/coibox/store"
)

// FuzzSetValue: any value for a COI entry is taken or refused with exactly the
// reply of coi spec §3: "invalid value for <entry>", with the value quoted only when
// it is short and has no CR, LF or NUL.
func FuzzSetValue(f *testing.F) {
	for _, s := range []string{"yes", "YES", "true", "", "no", "active", "seen", "none", "inactive", "a\r\nb", strings.Repeat("x", 65), "\x00"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		f.Fatal(err)
	}
	acc, err := st.AddAccount(ctx, "fuzz@example.org", "password-1")
	if err != nil {
		f.Fatal(err)
	}
	x := New(Options{Store: st, FilingDefault: true})
	f.Fuzz(func(t *testing.T, value string, filter bool) {
		entry, ok := EntryEnabled, value == "yes"
		if filter {
			entry, ok = EntryFilter, value == "none" || value == "active" || value == "seen"
		}
		err := x.Set(ctx, acc, []Entry{{Name: entry, Value: []byte(value)}})
		if ok {
			if err != nil {
				t.Fatalf("%s %q refused: %v", entry, value, err)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("%s %q: %v, want a COI refusal", entry, value, err)
		}
		want := "invalid value for " + entry
		if len(value) <= maxValueShown && !strings.ContainsAny(value, "\r\n\x00") {
			want += ": " + strconv.Quote(value)
		}
		if ce.Text != want {
			t.Fatalf("%s %q: reply %q, want %q", entry, value, ce.Text, want)
		}
	})
}
