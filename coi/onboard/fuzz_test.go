package onboard

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckNewAccount checks that an accepted address obeys every rule of §3 on its
// own terms, and that a refusal is a *RuleError whose text does not depend on the
// password's content (errors go to logs).
func FuzzCheckNewAccount(f *testing.F) {
	for _, tc := range ruleCases() {
		f.Add(tc.address, tc.password, tc.rules.LocalpartLen.Min, tc.rules.LocalpartLen.Max, tc.rules.PasswordMin)
	}
	f.Fuzz(func(t *testing.T, address, password string, lmin, lmax, pmin int) {
		rules := Rules{LocalpartLen: Range{lmin, lmax}, PasswordMin: pmin, Reserved: []string{"Support"}}
		err := CheckNewAccount(address, password, rules)
		if err == nil {
			norm := NormalizeAddress(address)
			local, domain, ok := strings.Cut(norm, "@")
			if !ok || strings.Contains(domain, "@") || local == "" || domain == "" {
				t.Fatalf("accepted %q, which is not one local part and one domain", address)
			}
			for i := 0; i < len(local); i++ {
				c := local[i]
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("._-", c) >= 0) {
					t.Fatalf("accepted %q with %q in the local part", address, c)
				}
			}
			lo, hi := max(lmin, 1), lmax
			if hi == 0 {
				hi = 64
			}
			if len(local) < lo || len(local) > hi {
				t.Fatalf("accepted local part of %d characters outside %d..%d", len(local), lo, hi)
			}
			for _, name := range append(ReservedNames(), "support") {
				if local == name {
					t.Fatalf("accepted reserved %q", address)
				}
			}
			if utf8.RuneCountInString(password) < max(pmin, 1) {
				t.Fatalf("accepted a password of %d characters under %d", utf8.RuneCountInString(password), pmin)
			}
			if CheckNewAccount(norm, password, rules) != nil {
				t.Fatalf("refused the normalized form of accepted %q", address)
			}
			return
		}
		var re *RuleError
		if !errors.As(err, &re) {
			t.Fatalf("error %v is not a *RuleError", err)
		}
		// Same length, other content: the verdict and the message must not change.
		other := strings.Repeat("x", utf8.RuneCountInString(password))
		if err2 := CheckNewAccount(address, other, rules); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("message depends on the password: %v, then %v", err, err2)
		}
	})
}
