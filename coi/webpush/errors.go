package webpush

import (
	"strconv"
	"strings"
)

// Error is a refusal the client must see as "NO [Code] Text" (§8.3, §8.4). The hook
// turns it into its command error unchanged; the texts are the spec's, which clients
// may match.
type Error struct {
	Code string // response code without brackets: CANNOT, LIMIT, UNAVAILABLE, METADATA MAXSIZE 4096
	Text string
	// cause is the underlying failure (a transport error of the validation push), for
	// the server's log only: it may carry the endpoint's details.
	cause error
}

func (e *Error) Error() string { return "[" + e.Code + "] " + e.Text }

// Unwrap gives the underlying failure, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is matches on code and text, so that errors.Is(err, ErrInvalidID) holds for any
// copy of a fixed refusal.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Text == e.Text
}

// The fixed refusals. Field, JSON and validation-push refusals carry a detail and are
// made by InvalidField, invalidJSON and validationFailed.
var (
	ErrInvalidID = &Error{Code: "CANNOT", Text: "Invalid subscription ID"}
	// ErrTooLarge: the spec gives only the code; RFC 5464's example text follows it.
	ErrTooLarge          = &Error{Code: "METADATA MAXSIZE " + strconv.Itoa(MaxValueSize), Text: "Subscription too large"}
	ErrTooMany           = &Error{Code: "LIMIT", Text: "Too many subscriptions, delete old ones first"}
	ErrThrottled         = &Error{Code: "LIMIT", Text: "Too many subscription attempts, try again later"}
	ErrInvalidValidation = &Error{Code: "CANNOT", Text: "invalid validation"}
	ErrUnsetValidation   = &Error{Code: "CANNOT", Text: "Can't unset validation key"}
)

// ReadOnly is the refusal of any SET of the vapid entry, or of an unknown name under
// EntryPrefix (§3, §8.1).
func ReadOnly(entry string) *Error {
	return &Error{Code: "CANNOT", Text: "unable to set " + entry}
}

// InvalidField is the refusal of a subscription whose field (client, device, msgtype,
// endpoint, p256dh, auth, exclude_from) breaks its rule (§8.3).
func InvalidField(field string) *Error {
	return &Error{Code: "CANNOT", Text: "Invalid subscription: " + field}
}

// invalidJSON is the refusal of a value that is not a JSON object. The reason comes
// from the JSON decoder and goes into an IMAP response line, so it is kept printable
// and short.
func invalidJSON(reason string) *Error {
	return &Error{Code: "CANNOT", Text: "Invalid JSON: " + printable(reason, 100)}
}

// Reasons of a failed validation push (§8.4). Never the response body: it comes from
// the endpoint and may be anything.
const (
	reasonTimeout = "timeout"
	reasonConnect = "connection failed"
	reasonTLS     = "TLS error"
)

func validationFailed(reason string, cause error) *Error {
	return &Error{Code: "UNAVAILABLE", Text: "Failed to start endpoint validation: " + reason, cause: cause}
}

// printable keeps the printable ASCII of s, at most n bytes, so that text from
// elsewhere cannot break an IMAP response line.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
