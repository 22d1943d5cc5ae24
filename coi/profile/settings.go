package profile

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coibox/coibox/config"
)

// setting is one key of `coibox domain set`: how to read its value and how to write it
// back. Every other part of the package (listing, storage) goes through this table,
// so a key has one spelling and one syntax everywhere.
type setting struct {
	key, doc string
	parse    func(v string) (func(*Profile), error)
	format   func(p *Profile) string
	secret   bool // listings show only whether it is set
}

// settings returns the table in the order of spec §1. It is a function, not a
// package variable, so that nothing can change it.
func settings() []setting {
	return []setting{
		onOff("chatmail", "apply the chatmail rules that have no setting of their own", func(p *Profile) *bool { return &p.Chatmail }),
		{key: "registration", doc: "open: make accounts on first login and at /new; closed: only the admin does",
			parse: func(v string) (func(*Profile), error) {
				r := Registration(strings.ToLower(v))
				if r != Open && r != Closed {
					return nil, fmt.Errorf("%q is neither open nor closed", v)
				}
				return func(p *Profile) { p.Registration = r }, nil
			},
			format: func(p *Profile) string { return string(p.Registration) }},
		{key: "localpart_len", doc: "length of new account names, MIN..MAX or one number",
			parse: func(v string) (func(*Profile), error) {
				r, err := parseRange(v)
				return func(p *Profile) { p.LocalpartLen = r }, err
			},
			format: func(p *Profile) string { return formatRange(p.LocalpartLen) }},
		{key: "password_min", doc: "shortest password a new account may have",
			parse: func(v string) (func(*Profile), error) {
				n, err := parseCount(v, 1, 128)
				return func(p *Profile) { p.PasswordMin = n }, err
			},
			format: func(p *Profile) string { return formatCount(p.PasswordMin) }},
		onOff("enforce_e2ee_outgoing", "refuse unencrypted mail from the domain's accounts", func(p *Profile) *bool { return &p.EnforceE2EEOutgoing }),
		onOff("enforce_e2ee_incoming", "refuse unencrypted mail to new accounts (each account keeps its own flag)", func(p *Profile) *bool { return &p.EnforceE2EEIncoming }),
		onOff("inbound_dkim_required", "accept only mail with a DKIM signature of the From domain", func(p *Profile) *bool { return &p.InboundDKIMRequired }),
		onOff("scrub_headers", "strip identifying header fields from submissions and deliveries", func(p *Profile) *bool { return &p.ScrubHeaders }),
		{key: "send_rate", doc: `transactions per sender, e.g. 60/min,burst=10, or "default"`,
			parse: func(v string) (func(*Profile), error) {
				r, err := parseRate(v)
				return func(p *Profile) { p.SendRate = r }, err
			},
			format: func(p *Profile) string { return formatRate(p.SendRate) }},
		size("max_mailbox_size", `hard quota of each account, or "default" for the account's own`, func(p *Profile) *config.Size { return &p.MaxMailboxSize }),
		onOff("trim_mailbox", "delete the oldest mail to keep mailboxes at 70 % of max_mailbox_size", func(p *Profile) *bool { return &p.TrimMailbox }),
		retention("delete_mails_after", "delete messages this old", func(p *Profile) *time.Duration { return &p.DeleteMailsAfter }),
		retention("delete_large_after", "delete seen messages over 200 kB this old", func(p *Profile) *time.Duration { return &p.DeleteLargeAfter }),
		retention("delete_inactive_users_after", "delete accounts not logged in to for this long", func(p *Profile) *time.Duration { return &p.DeleteInactiveUsersAfter }),
		size("max_message_size", `largest message, or "default" for the server's limit`, func(p *Profile) *config.Size { return &p.MaxMessageSize }),
		{key: "queue_lifetime", doc: "how long mail from the domain's senders is retried before it bounces",
			parse: func(v string) (func(*Profile), error) {
				d, err := parseDuration(v, false)
				return func(p *Profile) { p.QueueLifetime = d }, err
			},
			format: func(p *Profile) string { return formatDuration(p.QueueLifetime) }},
		onOff("push", "offer push notifications (XDELTAPUSH, device tokens)", func(p *Profile) *bool { return &p.Push }),
		onOff("xchatmail", "advertise XCHATMAIL (chatmail domains only)", func(p *Profile) *bool { return &p.XChatmail }),
		text("admin_contact", "address served as the admin contact", parseAddress, func(p *Profile) *string { return &p.AdminContact }),
		text("iroh_relay", "https URL of the iroh relay clients should use", parseHTTPS, func(p *Profile) *string { return &p.IrohRelay }),
		{key: "turn", doc: `TURN server for calls: off, embedded[:PORT] or HOST:PORT (with turn_secret)`,
			parse: func(v string) (func(*Profile), error) {
				t, err := parseTURN(v)
				return func(p *Profile) { p.TURN.Mode, p.TURN.Port, p.TURN.Addr = t.Mode, t.Port, t.Addr }, err
			},
			format: func(p *Profile) string { return formatTURN(p.TURN) }},
		{key: "turn_secret", doc: `shared secret of an external TURN server, or "unset"`, secret: true,
			parse: func(v string) (func(*Profile), error) {
				if v == "unset" {
					v = ""
				}
				return func(p *Profile) { p.TURN.Secret = v }, nil
			},
			format: func(p *Profile) string { return orUnset(p.TURN.Secret) }},
		{key: "resource_guard", doc: "refuse new accounts under strain: load1=N,ram=SIZE,disk=SIZE or off",
			parse: func(v string) (func(*Profile), error) {
				g, err := parseGuard(v)
				return func(p *Profile) { p.ResourceGuard = g }, err
			},
			format: func(p *Profile) string { return formatGuard(p.ResourceGuard) }},
	}
}

func onOff(key, doc string, field func(*Profile) *bool) setting {
	return setting{key: key, doc: doc,
		parse: func(v string) (func(*Profile), error) {
			b, err := parseBool(v)
			return func(p *Profile) { *field(p) = b }, err
		},
		format: func(p *Profile) string { return formatBool(*field(p)) }}
}

func size(key, doc string, field func(*Profile) *config.Size) setting {
	return setting{key: key, doc: doc,
		parse: func(v string) (func(*Profile), error) {
			z, err := parseSize(v)
			return func(p *Profile) { *field(p) = z }, err
		},
		format: func(p *Profile) string { return formatSize(*field(p)) }}
}

func retention(key, doc string, field func(*Profile) *time.Duration) setting {
	return setting{key: key, doc: doc + `, e.g. 20d or 36h, or "off"`,
		parse: func(v string) (func(*Profile), error) {
			d, err := parseDuration(v, true)
			return func(p *Profile) { *field(p) = d }, err
		},
		format: func(p *Profile) string { return formatDuration(*field(p)) }}
}

func text(key, doc string, check func(string) (string, error), field func(*Profile) *string) setting {
	return setting{key: key, doc: doc + `, or "unset"`,
		parse: func(v string) (func(*Profile), error) {
			if v == "" || v == "unset" {
				return func(p *Profile) { *field(p) = "" }, nil
			}
			s, err := check(v)
			return func(p *Profile) { *field(p) = s }, err
		},
		format: func(p *Profile) string { return orUnset(*field(p)) }}
}

// lookup finds a key's setting. Keys are matched ignoring case, and "-" may stand for
// "_", since people type both on command lines.
func lookup(key string) (setting, bool) {
	k := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
	for _, s := range settings() {
		if s.key == k {
			return s, true
		}
	}
	return setting{}, false
}

// Keys returns every key `coibox domain set` takes, in the order of spec §1.
func Keys() []string {
	var keys []string
	for _, s := range settings() {
		keys = append(keys, s.key)
	}
	return keys
}

// Change is one parsed assignment, ready to be applied with Set.
type Change struct {
	Key string // the canonical key
	set func(*Profile)
}

// Parse reads one key=value assignment of `coibox domain set`. The error names the key
// and says what a valid value looks like.
func Parse(key, value string) (Change, error) {
	s, ok := lookup(key)
	if !ok {
		return Change{}, fmt.Errorf("set %s: unknown setting; the settings are %s", key, strings.Join(Keys(), ", "))
	}
	value = strings.TrimSpace(value)
	if !utf8.ValidString(value) || strings.ContainsFunc(value, unicode.IsControl) {
		return Change{}, fmt.Errorf("set %s: the value has control characters or is not UTF-8", s.key)
	}
	set, err := s.parse(value)
	if err != nil {
		return Change{}, fmt.Errorf("set %s: %w", s.key, err)
	}
	return Change{Key: s.key, set: set}, nil
}

// ParseArg is Parse for one "key=value" command-line argument.
func ParseArg(arg string) (Change, error) {
	k, v, ok := strings.Cut(arg, "=")
	if !ok {
		return Change{}, fmt.Errorf("parse setting %q: write key=value, e.g. push=off", arg)
	}
	return Parse(k, v)
}

// Set applies changes in order and then checks the whole profile, so that settings
// that depend on each other can change in one command (chatmail=on xchatmail=on). On
// error p is left as it was.
func (p *Profile) Set(changes ...Change) error {
	q := *p
	for _, c := range changes {
		if c.set == nil {
			return fmt.Errorf("set profile: change of %q was not made by Parse", c.Key)
		}
		c.set(&q)
	}
	if err := q.Validate(); err != nil {
		return fmt.Errorf("set profile: %w", err)
	}
	*p = q
	return nil
}

// Setting is one line of a profile listing.
type Setting struct {
	Key   string
	Value string // as `domain set` takes it; a secret shows only as "(set)" or "unset"
	Doc   string
}

// Settings lists every setting of p in the order of spec §1, for `domain show`.
func (p Profile) Settings() []Setting {
	var out []Setting
	for _, s := range settings() {
		out = append(out, Setting{Key: s.key, Value: display(s, &p), Doc: s.doc})
	}
	return out
}

// String is a one-line summary for `domain list`: the kind of domain and the settings
// that differ from that kind's defaults, as key=value.
func (p Profile) String() string {
	var b strings.Builder
	b.WriteString("ordinary")
	if p.Chatmail {
		b.Reset()
		b.WriteString("chatmail")
	}
	base := Default(p.Chatmail)
	for _, s := range settings() {
		if v := s.format(&p); v != s.format(&base) {
			b.WriteString(" " + s.key + "=" + display(s, &p))
		}
	}
	return b.String()
}

func display(s setting, p *Profile) string {
	v := s.format(p)
	if s.secret && v != "unset" {
		return "(set)"
	}
	return v
}

func formatCount(n int) string {
	if n == 0 {
		return "unset"
	}
	return strconv.Itoa(n)
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
