package deliver

import (
	"errors"
	"fmt"

	"github.com/coibox/coibox/metrics"
)

// Reply refuses a recipient or a message with an SMTP reply. SMTP sends it as is;
// other protocols (HTTP /mxdeliv, IMAP APPEND) translate it. Every refusal the
// pipeline makes is a *Reply; any other error from it is an internal failure that
// callers answer with a temporary error.
type Reply struct {
	Code     int    // 4xx or 5xx
	Enhanced [3]int // RFC 3463 enhanced status code
	Message  string
	// Reason is the metrics label (metrics.Reason*) the refusal is counted under.
	Reason string
}

// NoEnhanced is the Enhanced code of a reply sent without one, for texts peers match
// exactly (chatmail's "523 Encryption Needed: …").
var NoEnhanced = [3]int{-1, -1, -1}

func (r *Reply) Error() string {
	if r.Enhanced == NoEnhanced {
		return fmt.Sprintf("%d %s", r.Code, r.Message)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Message)
}

// Temporary reports whether the client should try again later (a 4xx reply).
func (r *Reply) Temporary() bool { return r.Code/100 == 4 }

// AsReply returns err's *Reply if it has one.
func AsReply(err error) (*Reply, bool) {
	var r *Reply
	ok := errors.As(err, &r)
	return r, ok
}

func reply(code int, e1, e2, e3 int, reason, format string, args ...any) *Reply {
	return &Reply{Code: code, Enhanced: [3]int{e1, e2, e3}, Message: fmt.Sprintf(format, args...), Reason: reason}
}

// The refusals the pipeline itself makes. Their texts follow Postfix's, which clients
// and the chatmail tests (spec/chatmail.md §7, §8) recognise.

func errUnknownUser(addr string) *Reply {
	return reply(550, 5, 1, 1, metrics.ReasonUnknownUser, "<%s>: Recipient address rejected: User unknown", addr)
}

func errRelayDenied(addr string) *Reply {
	return reply(550, 5, 7, 1, metrics.ReasonRelayDenied, "<%s>: Relay access denied", addr)
}

func errMailboxFull(addr string) *Reply {
	return reply(552, 5, 2, 2, metrics.ReasonQuota, "<%s>: mailbox full", addr)
}

func errTooManyRcpts(max int) *Reply {
	return reply(452, 4, 5, 3, metrics.ReasonTooManyRcpts, "Too many recipients (at most %d per message)", max)
}

func errBadAddress(addr string) *Reply {
	return reply(501, 5, 1, 3, metrics.ReasonSyntax, "<%s>: Bad recipient address syntax", addr)
}

// ErrAuthRequired refuses a submission transaction without a login.
var ErrAuthRequired = &Reply{Code: 530, Enhanced: [3]int{5, 7, 0}, Message: "Authentication required", Reason: metrics.ReasonAuthRequired}

func errSenderNotOwned(addr, login string) *Reply {
	return reply(553, 5, 7, 1, metrics.ReasonSenderMismatch, "<%s>: Sender address rejected: not owned by user %s", addr, login)
}

func errFromNotOwned(addr, login string) *Reply {
	return reply(550, 5, 7, 1, metrics.ReasonSenderMismatch, "From header address <%s> not owned by user %s", addr, login)
}

func errBadFrom(why string) *Reply {
	return reply(550, 5, 7, 1, metrics.ReasonSenderMismatch, "Invalid FROM header: %s", why)
}

// ErrTooBig refuses a message over the size limit.
var ErrTooBig = &Reply{Code: 552, Enhanced: [3]int{5, 3, 4}, Message: "Message size exceeds fixed limit", Reason: metrics.ReasonTooBig}

func errTooManyHops(n int) *Reply {
	return reply(554, 5, 4, 6, metrics.ReasonPolicy, "Too many hops (%d Received header fields): mail loop?", n)
}

var errNoRecipients = &Reply{Code: 554, Enhanced: [3]int{5, 5, 1}, Message: "No valid recipients", Reason: metrics.ReasonPolicy}

// ErrBareCR refuses a message with a CR that does not start a CRLF.
//
// Such a message is refused, not normalised as a bare LF is (the pipeline stores that
// as CRLF, because old scripts still send LF line ends and their mail is wanted). No
// sender has that excuse for a lone CR: RFC 5321 §2.3.8 and RFC 5322 §2.3 allow CR only
// in CRLF, and its one use in the wild is SMTP smuggling, where a server that takes a
// lone CR for a line end reads "CR . CR" as the end of the data. Neither this server's
// DATA reader nor its queue does so, but the stored copy would keep the CRs, so IMAP
// clients and anything else reading it would each split its lines their own way;
// turning them into CRLF instead would rewrite, silently, a message that is almost
// certainly a probe, and break any DKIM signature it has. A 550 tells the sender.
var ErrBareCR = &Reply{Code: 550, Enhanced: [3]int{5, 6, 0}, Reason: metrics.ReasonSyntax,
	Message: "Message refused: it contains a bare CR (carriage return without line feed), which RFC 5322 forbids"}

// ErrStorageFull refuses a message for now because the server's disk is full
// (store.ErrStorageFull): the sender keeps it and tries again (RFC 5321 §4.2.3 452,
// RFC 3463 X.3.1 mail system full).
var ErrStorageFull = &Reply{Code: 452, Enhanced: [3]int{4, 3, 1}, Message: "Insufficient system storage, try again later", Reason: metrics.ReasonStorageFull}
