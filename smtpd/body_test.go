package smtpd

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	tests := []struct {
		name      string
		size      int   // bytes sent
		max, hint int64 // limit and SIZE=
		tooBig    bool
	}{
		{"empty", 0, 100, 0, false},
		{"small, no hint", 10, 100, 0, false},
		{"exactly the limit", 100, 100, 0, false},
		{"one over", 101, 100, 0, true},
		{"far over", 1 << 20, 100, 0, true},
		{"hint right", 5000, 1 << 20, 5000, false},
		{"hint too small", 50_000, 1 << 20, 10, false},
		{"hint over the limit", 10, 100, 1 << 30, false},
		{"grows past the first buffer", 100_000, 1 << 20, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Repeat("x", tc.size)
			// Short reads exercise the growth logic.
			got, err := readBody(iotest.HalfReader(strings.NewReader(in)), tc.max, tc.hint)
			if tc.tooBig {
				if !errors.Is(err, errBodyTooBig) {
					t.Fatalf("err %v, want errBodyTooBig", err)
				}
				return
			}
			if err != nil || string(got) != in {
				t.Fatalf("got %d bytes, %v; want %d", len(got), err, tc.size)
			}
			if int64(cap(got)) > tc.max+1 {
				t.Errorf("buffer of %d bytes for a limit of %d", cap(got), tc.max)
			}
		})
	}
}
