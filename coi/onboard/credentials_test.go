package onboard

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func never(context.Context, string) (bool, error) { return false, nil }

func TestNewCredentials(t *testing.T) {
	email := regexp.MustCompile(`^[a-z0-9]{9}@chat\.example$`)
	for _, tc := range []struct {
		passwordMin int
		wantLen     int
	}{
		{9, 12},
		{1, 4},
		{20, 23},
		{0, 12},  // unset: the chatmail default 9
		{-5, 12}, // nonsense counts as unset
	} {
		c, err := NewCredentials(context.Background(), "chat.example", tc.passwordMin, never)
		if err != nil {
			t.Fatalf("password_min %d: %v", tc.passwordMin, err)
		}
		if !email.MatchString(c.Email) {
			t.Errorf("password_min %d: email %q", tc.passwordMin, c.Email)
		}
		if len(c.Password) != tc.wantLen {
			t.Errorf("password_min %d: password has %d characters, want %d", tc.passwordMin, len(c.Password), tc.wantLen)
		}
		for _, r := range c.Password {
			if !strings.ContainsRune(PasswordAlphabet, r) {
				t.Errorf("password_min %d: password has %q", tc.passwordMin, r)
			}
		}
		// What /new hands out must make an account at first login (§3).
		if err := CheckNewAccount(c.Email, c.Password, Rules{LocalpartLen: Range{9, 9}, PasswordMin: max(tc.passwordMin, 1)}); err != nil {
			t.Errorf("password_min %d: the credentials fail §3: %v", tc.passwordMin, err)
		}
	}
}

func TestNewCredentialsRefusesHugePasswordMin(t *testing.T) {
	if _, err := NewCredentials(context.Background(), "chat.example", maxPasswordMin+1, never); err == nil {
		t.Fatal("made credentials for password_min over the limit")
	}
}

func TestNewCredentialsSkipsExisting(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "request")
	var asked []string
	exists := func(ctx context.Context, addr string) (bool, error) {
		if ctx.Value(key{}) != "request" {
			t.Error("exists did not get the caller's context")
		}
		asked = append(asked, addr)
		return len(asked) <= 3, nil
	}
	c, err := NewCredentials(ctx, "chat.example", 9, exists)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 4 || c.Email != asked[3] {
		t.Fatalf("asked %q and got %q, want the fourth name", asked, c.Email)
	}
}

func TestNewCredentialsGivesUp(t *testing.T) {
	calls := 0
	always := func(context.Context, string) (bool, error) { calls++; return true, nil }
	_, err := NewCredentials(context.Background(), "chat.example", 9, always)
	if err == nil || !strings.HasPrefix(err.Error(), "pick local part: ") {
		t.Fatalf("err = %v", err)
	}
	if calls != nameTries {
		t.Errorf("asked %d times, want %d", calls, nameTries)
	}
}

func TestNewCredentialsLookupError(t *testing.T) {
	broken := errors.New("database is locked")
	_, err := NewCredentials(context.Background(), "chat.example", 9, func(context.Context, string) (bool, error) { return false, broken })
	if !errors.Is(err, broken) || !strings.HasPrefix(err.Error(), "look up new address: ") {
		t.Fatalf("err = %v, want it wrapped", err)
	}
}

func TestPasswordAlphabet(t *testing.T) {
	// Every printable ASCII character but space, each once: letters, digits and the
	// 32 punctuation characters.
	var want strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		want.WriteByte(c)
	}
	if got := sortString(PasswordAlphabet); got != want.String() {
		t.Fatalf("alphabet sorted is %q, want %q", got, want.String())
	}
	if got := sortString(LocalpartAlphabet); got != "0123456789abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("local part alphabet sorted is %q", got)
	}
}

func sortString(s string) string {
	var seen [256]int
	for i := 0; i < len(s); i++ {
		seen[s[i]]++
	}
	var b strings.Builder
	for c, n := range seen {
		for range n {
			b.WriteByte(byte(c))
		}
	}
	return b.String()
}

// TestRandomStringUsesWholeAlphabet draws 200 characters per symbol on average: every
// symbol turns up and none is drawn twice as often as it should be, unless the draw is
// biased (the chance otherwise is far below 1e-40).
func TestRandomStringUsesWholeAlphabet(t *testing.T) {
	for _, alphabet := range []string{PasswordAlphabet, LocalpartAlphabet} {
		n := 200 * len(alphabet)
		s, err := randomString(alphabet, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != n {
			t.Fatalf("got %d characters, want %d", len(s), n)
		}
		count := map[rune]int{}
		for _, r := range s {
			count[r]++
		}
		for _, r := range alphabet {
			if c := count[r]; c == 0 || c > 400 {
				t.Errorf("%q drawn %d times in %d, expected about 200", r, c, n)
			}
		}
		if len(count) != len(alphabet) {
			t.Errorf("drew %d distinct characters, want %d", len(count), len(alphabet))
		}
	}
}

func TestDCLoginURLParsesBack(t *testing.T) {
	cases := []Credentials{
		{"abc123xyz@chat.example", `p&=?#%+ /"'\:@;<>[]{}|^~` + "`"},
		{"abc123xyz@_test.example", "plain"},
	}
	for range 200 {
		c, err := NewCredentials(context.Background(), "chat.example", 9, never)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	for _, c := range cases {
		raw := c.DCLoginURL()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("parse %q: %v", raw, err)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			t.Fatalf("parse query of %q: %v", raw, err)
		}
		if u.Scheme != "dclogin" || u.Opaque != c.Email || u.Fragment != "" {
			t.Errorf("%q: scheme %q, address %q, fragment %q", raw, u.Scheme, u.Opaque, u.Fragment)
		}
		if got := q.Get("p"); got != c.Password {
			t.Errorf("%q: password decodes to %q, want %q", raw, got, c.Password)
		}
		if q.Get("v") != "1" || q.Get("ic") != "3" || len(q) != 3 {
			t.Errorf("%q: query %v, want p, v=1 and ic=3", raw, q)
		}
		want := "dclogin:" + c.Email + "?p="
		if !strings.HasPrefix(raw, want) || !strings.HasSuffix(raw, "&v=1&ic=3") {
			t.Errorf("%q is not of the form dclogin:<addr>?p=<pw>&v=1&ic=3", raw)
		}
	}
}
