package ascii

import "testing"

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"alice@example.org", true},
		{"\x00\x7f", true},
		{"pelé@example.org", false},
		{"\x80", false},
		{"a\xff", false},
	} {
		if got := Is(tc.in); got != tc.want {
			t.Errorf("Is(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := Is([]byte(tc.in)); got != tc.want {
			t.Errorf("Is([]byte(%q)) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
