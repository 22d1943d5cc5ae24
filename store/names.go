package store

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/coibox/coibox/internal/ascii"
)

// CheckDomainName returns name in the form domains are stored in: lower case, no
// trailing dot, internationalized names as A-labels (xn--…). It refuses what no other
// server could send mail to: IP addresses, single labels other than localhost (the
// local profile's domain), labels over 63 or names over 253 octets, characters other
// than letters, digits and hyphens, except a "_" starting the first label, which marks
// the self-signed test and LAN domains of chatmail (as the hostname may).
func CheckDomainName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%q is not a domain name: it is not valid UTF-8", name)
	}
	n := strings.TrimSuffix(Normalize(name), ".")
	if n == "" {
		return "", fmt.Errorf("%q is not a domain name: it is empty", name)
	}
	if _, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
		return "", fmt.Errorf("%q is an IP address, not a domain name", name)
	}
	test := strings.HasPrefix(n, "_")
	rest := strings.TrimPrefix(n, "_")
	if !ascii.Is(rest) {
		a, err := idna.Lookup.ToASCII(rest)
		if err != nil {
			return "", fmt.Errorf("%q is not a valid internationalized domain name: %w", name, err)
		}
		rest = a
	}
	if test {
		n = "_" + rest
	} else {
		n = rest
	}
	if len(n) > 253 {
		return "", fmt.Errorf("%q is not a domain name: it is longer than 253 characters", name)
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 && n != "localhost" {
		return "", fmt.Errorf("%q is not a domain name: it has a single label (write the full name, e.g. %s.example.org)", name, n)
	}
	for i, l := range labels {
		switch {
		case l == "" && i == 0 && test:
			return "", fmt.Errorf("%q is not a domain name: \"_\" must be followed by a label", name)
		case l == "":
			return "", fmt.Errorf("%q is not a domain name: it has an empty label (two dots in a row, or a leading dot)", name)
		case len(l) > 63:
			return "", fmt.Errorf("%q is not a domain name: label %q is longer than 63 characters", name, l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return "", fmt.Errorf("%q is not a domain name: label %q starts or ends with a hyphen", name, l)
		}
		for _, c := range []byte(l) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				if c == '_' {
					return "", fmt.Errorf("%q is not a domain name: \"_\" may only start the first label (test domains such as _chat.example)", name)
				}
				return "", fmt.Errorf("%q is not a domain name: label %q may contain only letters, digits and hyphens", name, l)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%q is not a domain name: its last label is all digits", name)
	}
	return n, nil
}

// CheckLocalPart refuses a local part (before the @) that an account or alias cannot
// have: empty, over 64 octets (RFC 5321 §4.5.3.1.1), with control characters, spaces
// or the specials of RFC 5322 (which would need quoting), invalid UTF-8, or dots at
// either end or in a row.
func CheckLocalPart(local string) error {
	switch {
	case local == "":
		return fmt.Errorf("the local part (before the @) is empty")
	case len(local) > 64:
		return fmt.Errorf("the local part %.20q… is longer than 64 octets", local)
	case !utf8.ValidString(local):
		return fmt.Errorf("the local part %q is not valid UTF-8", local)
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return fmt.Errorf("the local part %q has a dot at its start or end, or two in a row", local)
	}
	for _, r := range local {
		if unicode.IsControl(r) || unicode.IsSpace(r) || strings.ContainsRune(`"(),:;<>@[\]`, r) {
			return fmt.Errorf("the local part %q contains %q, which addresses here may not", local, r)
		}
	}
	return nil
}

// CheckAddress checks an address: a valid local part and domain name. It returns the
// address normalized, with the domain in stored form (A-labels).
func CheckAddress(address string) (string, error) {
	if !utf8.ValidString(address) {
		return "", fmt.Errorf("%q is not a valid address: it is not valid UTF-8", address)
	}
	address = Normalize(address)
	local, domain, err := SplitAddress(address)
	if err != nil {
		return "", err
	}
	if err := CheckLocalPart(local); err != nil {
		return "", fmt.Errorf("%q is not a valid address: %w", address, err)
	}
	d, err := CheckDomainName(domain)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid address: %w", address, err)
	}
	return local + "@" + d, nil
}
