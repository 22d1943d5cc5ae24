package profile

import (
	"errors"
	"time"

	"github.com/coibox/coibox/config"
)

// Profile is every per-domain setting of spec §1. Each field's comment names its key
// for `coibox domain set`. Zero values mean "off", "unset" or "the server's default",
// as the comment says, so that an ordinary domain is mostly zero.
type Profile struct {
	// Chatmail (chatmail) turns on the rules tagged [chatmail] that have no setting of
	// their own, such as From equal to MAIL FROM (§7.1) and STARTTLS for chatmail
	// recipients on port 25 (§8); registration=open and xchatmail=on need it.
	Chatmail bool
	// Registration (registration) is whether unknown logins and /new make accounts.
	Registration Registration
	// LocalpartLen (localpart_len) and PasswordMin (password_min) bound new accounts'
	// names and passwords; zero means unset (ordinary domains make no accounts).
	LocalpartLen Range
	PasswordMin  int
	// EnforceE2EEOutgoing (enforce_e2ee_outgoing) refuses cleartext submissions (§6.2).
	EnforceE2EEOutgoing bool
	// EnforceE2EEIncoming (enforce_e2ee_incoming) is the flag new accounts get; after
	// that each account's own flag, which the admin may change, decides (§6.3).
	EnforceE2EEIncoming bool
	// InboundDKIMRequired (inbound_dkim_required) demands a valid DKIM signature aligned
	// strictly with the From domain instead of SPF/DKIM/DMARC evaluation (§8).
	InboundDKIMRequired bool
	// ScrubHeaders (scrub_headers) removes identifying header fields (§7.3).
	ScrubHeaders bool
	// SendRate (send_rate) limits each sender's transactions; zero: the server default.
	SendRate Rate
	// MaxMailboxSize (max_mailbox_size) is a hard quota for every account of the
	// domain; zero leaves each account's own quota. TrimMailbox (trim_mailbox) deletes
	// the oldest mail to keep usage under it (§10).
	MaxMailboxSize config.Size
	TrimMailbox    bool
	// Retention (delete_mails_after, delete_large_after, delete_inactive_users_after),
	// zero for off (§10).
	DeleteMailsAfter         time.Duration
	DeleteLargeAfter         time.Duration
	DeleteInactiveUsersAfter time.Duration
	// MaxMessageSize (max_message_size) caps one message; zero: the server default.
	MaxMessageSize config.Size
	// QueueLifetime (queue_lifetime) is how long the queue retries mail from the
	// domain's senders before it bounces.
	QueueLifetime time.Duration
	// Push (push) serves XDELTAPUSH, device tokens and notifications (§9).
	Push bool
	// XChatmail (xchatmail) advertises XCHATMAIL, which makes single-device clients
	// delete mail from the server after download (§2.1).
	XChatmail bool
	// AdminContact (admin_contact) is served as /shared/admin; IrohRelay (iroh_relay),
	// an https URL, as /shared/vendor/deltachat/irohrelay (§2.3). "" is unset.
	AdminContact string
	IrohRelay    string
	// TURN (turn, turn_secret) is the TURN server offered for calls (§2.5).
	TURN TURN
	// ResourceGuard (resource_guard) refuses new accounts on a strained machine.
	ResourceGuard ResourceGuard
}

// Registration says whether a domain makes accounts for unknown logins (§3, §4).
type Registration string

const (
	Closed Registration = "closed"
	Open   Registration = "open"
)

// Range is an inclusive range of lengths; the zero Range is unset.
type Range struct{ Min, Max int }

// Rate is a GCRA limit: Count transactions per Per, with bursts of up to Burst. The
// zero Rate means the server default.
type Rate struct {
	Count int
	Per   time.Duration
	Burst int
}

// TURNMode says where the TURN server is.
type TURNMode string

const (
	TURNOff      TURNMode = "off"
	TURNEmbedded TURNMode = "embedded" // coibox's own, on <hostname>:Port
	TURNExternal TURNMode = "external" // Addr, with credentials made from Secret
)

// TURN is the TURN server clients are told about. The embedded server keeps its
// secret in the data directory, so only an external server needs one here.
type TURN struct {
	Mode   TURNMode
	Port   int    // embedded: the UDP and TCP port
	Addr   string // external: host:port
	Secret string // external: the shared secret
}

// ResourceGuard refuses new accounts while the one-minute load average is above
// MaxLoad1 or free memory or disk is below the minimum; a zero field is not checked,
// and the zero ResourceGuard is off.
type ResourceGuard struct {
	MaxLoad1    float64
	MinFreeRAM  config.Size
	MinFreeDisk config.Size
}

// Chatmail returns the chatmail defaults, which are the relay's (spec §1).
func Chatmail() Profile {
	return Profile{
		Chatmail:                 true,
		Registration:             Open,
		LocalpartLen:             Range{9, 9},
		PasswordMin:              9,
		EnforceE2EEOutgoing:      true,
		EnforceE2EEIncoming:      true,
		InboundDKIMRequired:      true,
		ScrubHeaders:             true,
		SendRate:                 Rate{Count: 60, Per: time.Minute, Burst: 10},
		MaxMailboxSize:           500 * config.MiB,
		TrimMailbox:              true,
		DeleteMailsAfter:         20 * day,
		DeleteLargeAfter:         7 * day,
		DeleteInactiveUsersAfter: 90 * day,
		MaxMessageSize:           31457280,
		QueueLifetime:            2 * day,
		Push:                     true,
		XChatmail:                true,
		TURN:                     TURN{Mode: TURNEmbedded, Port: 3478},
		ResourceGuard:            ResourceGuard{MaxLoad1: 5, MinFreeRAM: 200 * config.MiB, MinFreeDisk: config.GiB},
	}
}

// Ordinary returns the defaults of an ordinary email domain.
func Ordinary() Profile {
	return Profile{
		Registration:  Closed,
		QueueLifetime: 5 * day,
		TURN:          TURN{Mode: TURNOff},
	}
}

// Default returns Chatmail() or Ordinary().
func Default(chatmail bool) Profile {
	if chatmail {
		return Chatmail()
	}
	return Ordinary()
}

const day = 24 * time.Hour

// Validate checks the rules that tie settings together; each message names a key.
// Single values were checked when they were parsed.
func (p Profile) Validate() error {
	var errs []error
	fail := func(msg string) { errs = append(errs, errors.New(msg)) }
	if p.XChatmail && !p.Chatmail {
		fail("xchatmail: must stay off unless chatmail=on: it makes clients delete their mail from the server")
	}
	if p.Registration == Open {
		if !p.Chatmail {
			fail("registration: open needs chatmail=on: only chatmail domains make accounts on first login")
		}
		if p.LocalpartLen == (Range{}) {
			fail("localpart_len: must be set when registration=open, e.g. 9..9")
		}
		if p.PasswordMin == 0 {
			fail("password_min: must be set when registration=open, e.g. 9")
		}
	}
	if p.TrimMailbox && p.MaxMailboxSize == 0 {
		fail("trim_mailbox: needs max_mailbox_size, since trimming keeps mailboxes at 70 % of it")
	}
	if p.TURN.Mode == TURNExternal && p.TURN.Secret == "" {
		fail("turn_secret: must be set for an external turn server")
	}
	return errors.Join(errs...)
}
