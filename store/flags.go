package store

import (
	"sort"
	"strings"
)

// System flags in their canonical spelling; clients may send any case.
var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

const (
	FlagSeen    = `\Seen`
	FlagDeleted = `\Deleted`
)

// NormalizeFlags canonicalises system flags, drops duplicates (keywords compare
// case-insensitively) and \Recent (which the server alone sets), and sorts.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		if f == "" {
			continue
		}
		key := strings.ToLower(f)
		if key == `\recent` {
			continue
		}
		if c, ok := systemFlags[key]; ok {
			f = c
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// FlagOp says how STORE combines flags with a message's current ones.
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

func applyFlags(cur []string, op FlagOp, flags []string) []string {
	switch op {
	case FlagsSet:
		return NormalizeFlags(flags)
	case FlagsAdd:
		return NormalizeFlags(append(append([]string(nil), cur...), flags...))
	default:
		out := make([]string, 0, len(cur))
		for _, c := range cur {
			if !hasFlag(flags, c) {
				out = append(out, c)
			}
		}
		return out
	}
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
