package onboard

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Range is an inclusive range of lengths. It has the shape of profile.Range, so a
// domain's profile converts with onboard.Range(p.LocalpartLen) and this package need
// not depend on the profile's storage form.
type Range struct{ Min, Max int }

// Rules bound the accounts that a first login may make on one chatmail domain (§3).
// The caller picks the Rules of the address's domain and has already made sure that
// the domain is a chatmail domain with open registration.
type Rules struct {
	// LocalpartLen bounds the local part's length. Min below 1 counts as 1 and Max 0
	// as 64, the RFC 5321 limit, so a zero Range never lets an empty name through.
	LocalpartLen Range
	// PasswordMin is the fewest characters a password may have; below 1 counts as 1.
	PasswordMin int
	// Reserved are local parts refused in addition to ReservedNames, which are always
	// refused: a hand-built Rules must never let a stranger claim postmaster@.
	Reserved []string
}

// ChatmailRules are the chatmail defaults of spec §1 (localpart_len 9..9, password_min 9).
func ChatmailRules() Rules {
	return Rules{LocalpartLen: Range{Min: 9, Max: 9}, PasswordMin: 9}
}

// ReservedNames are the local parts that §3 keeps from first logins on every domain,
// since mail to them reaches the operator or is expected to.
func ReservedNames() []string {
	return []string{"postmaster", "abuse", "mailer-daemon", "admin", "root"}
}

// maxLocalpart is RFC 5321's limit on a local part (4.5.3.1.1).
const maxLocalpart = 64

// Reason names the rule of §3 that a new account broke.
type Reason int

const (
	// NotAnAddress: not exactly one @, or an empty local part or domain.
	NotAnAddress Reason = iota + 1
	// BadLocalpart: the local part has a character outside [a-z0-9._-].
	BadLocalpart
	// LocalpartOutOfRange: the local part's length is outside Rules.LocalpartLen.
	LocalpartOutOfRange
	// ReservedName: the local part is reserved.
	ReservedName
	// ShortPassword: the password has fewer than Rules.PasswordMin characters.
	ShortPassword
)

func (r Reason) String() string {
	switch r {
	case NotAnAddress:
		return "not an address"
	case BadLocalpart:
		return "local part has characters other than a-z 0-9 . _ -"
	case LocalpartOutOfRange:
		return "local part length out of range"
	case ReservedName:
		return "reserved name"
	case ShortPassword:
		return "password too short"
	}
	return "reason " + strconv.Itoa(int(r))
}

// RuleError says which rule a new account broke. It is for logs only: callers answer
// every refusal like a wrong password (§3), so that a client learns nothing about which
// names exist or are reserved. It never holds the password.
type RuleError struct {
	Reason  Reason
	Address string // the lower-cased address, clipped for logs
	Detail  string // e.g. the length and the allowed range; may be empty
}

func (e *RuleError) Error() string {
	s := fmt.Sprintf("check new account %q: %s", e.Address, e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// maxLoggedAddress bounds the address a RuleError carries, because logins of any length
// arrive from the network and end up in logs.
const maxLoggedAddress = 128

// NormalizeAddress lower-cases an address the way CheckNewAccount does: ASCII letters
// only. Unicode case mapping would turn U+212A KELVIN SIGN into "k", so a login that
// looks different would land on an existing ASCII name; with ASCII folding any
// non-ASCII byte stays and is refused by the local part rule. Callers store and look
// up the result.
func NormalizeAddress(address string) string {
	for i := 0; i < len(address); i++ {
		if c := address[i]; 'A' <= c && c <= 'Z' {
			b := []byte(address)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return address
}

// CheckNewAccount reports whether a first login with address and password may make an
// account under rules (§3 steps 1 to 3, without the store's alias and tombstone checks).
// It returns nil or a *RuleError. Make the account under NormalizeAddress(address).
func CheckNewAccount(address, password string, rules Rules) error {
	address = NormalizeAddress(address)
	fail := func(r Reason, detail string) error {
		return &RuleError{Reason: r, Address: clip(address, maxLoggedAddress), Detail: detail}
	}
	if strings.Count(address, "@") != 1 {
		return fail(NotAnAddress, "")
	}
	local, domain, _ := strings.Cut(address, "@")
	if local == "" || domain == "" {
		return fail(NotAnAddress, "")
	}
	for i := 0; i < len(local); i++ {
		if !localpartByte(local[i]) {
			return fail(BadLocalpart, "")
		}
	}
	lo, hi := max(rules.LocalpartLen.Min, 1), rules.LocalpartLen.Max
	if hi == 0 {
		hi = maxLocalpart
	}
	if n := len(local); n < lo || n > hi {
		return fail(LocalpartOutOfRange, fmt.Sprintf("%d is outside %d..%d", n, lo, hi))
	}
	if reserved(local, rules.Reserved) {
		return fail(ReservedName, "")
	}
	if n, least := utf8.RuneCountInString(password), max(rules.PasswordMin, 1); n < least {
		return fail(ShortPassword, fmt.Sprintf("%d characters, fewer than %d", n, least))
	}
	return nil
}

// localpartByte is the character class [a-z0-9._-] of §3, spelled out rather than a
// regexp so that the check needs no package state and runs in a single pass.
func localpartByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

func reserved(local string, extra []string) bool {
	switch local {
	case "postmaster", "abuse", "mailer-daemon", "admin", "root": // ReservedNames
		return true
	}
	for _, name := range extra {
		if local == NormalizeAddress(name) {
			return true
		}
	}
	return false
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
