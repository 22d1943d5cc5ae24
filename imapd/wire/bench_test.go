package wire

import (
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// writeFlags writes the UID FETCH (FLAGS) reply for n messages, the way a
// session answers "UID FETCH 1:* (FLAGS)".
func writeFlags(w *Writer, n int, flags [][]imap.Flag) {
	for i := 1; i <= n; i++ {
		w.FetchStart(uint32(i))
		w.FetchUID(imap.UID(i + 1000))
		w.FetchFlags(flags[i%len(flags)])
		w.FetchEnd()
	}
}

var benchFlags = [][]imap.Flag{nil, {imap.FlagSeen}, {imap.FlagSeen, "$Chat"}, {imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged}}

func BenchmarkFetchFlags10k(b *testing.B) {
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		writeFlags(w, 10000, benchFlags)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFetchFlagsNoAllocs(t *testing.T) {
	w := NewWriter(io.Discard)
	allocs := testing.AllocsPerRun(10, func() { writeFlags(w, 1000, benchFlags) })
	if allocs != 0 {
		t.Errorf("%v allocations for 1000 FETCH responses, want 0", allocs)
	}
}

func BenchmarkParseFetch(b *testing.B) {
	const line = "p UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (" + prefetch + ")])\r\n"
	b.ReportAllocs()
	for b.Loop() {
		cmd, err := parseCommand([]byte(line[:len(line)-2]), nil, DefaultLimits(), false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cmd.Fetch(); err != nil {
			b.Fatal(err)
		}
	}
}
