package webpush

import "strings"

// The METADATA entries of the extension (§8.1), all on mailbox "" and private. Names
// are lower case, as imapd hands them to its hook and the store keeps them: entry
// names are case-insensitive (RFC 5464 §3.2), so a subscription id is too, and
// "ABC" and "abc" name one subscription, as with Dovecot.
const (
	EntryPrefix        = "/private/vendor/vendor.dovecot/webpush"
	VapidEntry         = EntryPrefix + "/vapid"
	SubscriptionsEntry = EntryPrefix + "/subscriptions"
	validateSuffix     = "/validate"
)

// EntryKind says what an entry name under EntryPrefix is.
type EntryKind int

const (
	// EntryOther is any other name under EntryPrefix (SET: ReadOnly, GET: NIL), or a
	// name outside it.
	EntryOther EntryKind = iota
	// EntryVapid is VapidEntry: GET gives Key.PublicPEM, SET is ReadOnly.
	EntryVapid
	// EntrySubscriptions is SubscriptionsEntry itself; it has no value, its DEPTH 1
	// children are the subscriptions.
	EntrySubscriptions
	// EntrySubscription is SubscriptionsEntry/<id>: the id may still be invalid, which
	// Subscribe reports as ErrInvalidID.
	EntrySubscription
	// EntryValidate is SubscriptionsEntry/<id>/validate: GET NIL, SET Validate.
	EntryValidate
)

// ParseEntry classifies a (lower-case) entry name and returns the subscription id it
// names, if any. Ids cannot contain "/", so ".../<id>/validate" is unambiguous; any other
// name below subscriptions/ is a subscription with an invalid id.
func ParseEntry(name string) (EntryKind, string) {
	switch name {
	case VapidEntry:
		return EntryVapid, ""
	case SubscriptionsEntry:
		return EntrySubscriptions, ""
	}
	rest, ok := strings.CutPrefix(name, SubscriptionsEntry+"/")
	if !ok {
		return EntryOther, ""
	}
	if id, ok := strings.CutSuffix(rest, validateSuffix); ok && ValidID(id) {
		return EntryValidate, id
	}
	return EntrySubscription, rest
}

// SubscriptionEntry is the entry name a subscription's value is stored under.
func SubscriptionEntry(id string) string { return SubscriptionsEntry + "/" + id }

// MaxIDLength bounds a subscription id (§8.3).
const MaxIDLength = 128

// ValidID reports whether id is 1–128 characters of 0x21–0x7E except / * % " \ (§8.3).
// This is more lenient than SPEC-W's [0-9A-Za-z_-]{10,36}: OX COI sends UUIDs, others
// may not; the excluded characters are those METADATA names and IMAP strings treat
// specially.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte(`/*%"\`, c) >= 0 {
			return false
		}
	}
	return true
}
