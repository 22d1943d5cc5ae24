// Package deliver is coibox's one delivery pipeline: recipient rules, message checks, and
// the atomic hand-over to local mailboxes and the outbound queue, for every protocol.
package deliver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/store"
)

// Kind is where a message comes from, which decides the rules it meets.
type Kind uint8

const (
	// MX is mail from other servers (port 25, HTTPS /mxdeliv): local recipients only.
	MX Kind = iota + 1
	// Submission is mail from a logged-in account (ports 587, 465): it may go anywhere,
	// but only from addresses the account owns.
	Submission
)

func (k Kind) String() string {
	switch k {
	case MX:
		return "mx"
	case Submission:
		return "submission"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Envelope is one transaction as it builds up: who is sending, over what, to whom.
// A protocol session fills in the connection facts and the sender, then calls
// AddRecipient for each recipient; one Envelope serves one transaction.
type Envelope struct {
	Kind Kind
	// Listener labels metrics and logs ("mx", "submission", "submissions", "mxdeliv");
	// empty means Kind's name.
	Listener string
	// ID traces the message through logs and its Received field; empty: one is made.
	ID       string
	RemoteIP netip.Addr
	HELO     string
	TLS      *tls.ConnectionState // nil: the client did not use TLS
	// AccountID is the logged-in account, 0 if none; Login its address.
	AccountID int64
	Login     string
	Sender    string // the envelope sender (MAIL FROM), "" for the null sender
	SMTPUTF8  bool
	// RequireTLS (RFC 8689) and EightBit (BODY=8BITMIME) travel into the outbound queue.
	RequireTLS bool
	EightBit   bool
	// Recipients accepted so far, in order, without duplicates.
	Recipients []Recipient

	// The sender ownership check, done once per sender rather than once per recipient.
	senderChecked  bool
	checkedSender  string
	checkedAccount int64
	senderErr      error
}

// Recipient is an accepted recipient and where its mail goes.
type Recipient struct {
	Address  string   // as the client gave it
	Accounts []int64  // local accounts receiving it
	Forward  []string // remote addresses an alias forwards it to
	Remote   bool     // not a local domain: relayed (submission only)
}

func (e *Envelope) listener() string {
	if e.Listener != "" {
		return e.Listener
	}
	return e.Kind.String()
}

// Message is an envelope with its content.
type Message struct {
	Envelope
	// Body is the message as received: header section, empty line, body. It must be
	// within the size limit already; the pipeline does not copy it until it stores it.
	Body []byte
	// Received is the trace field the pipeline prepends (CRLF-terminated). The pipeline
	// sets it before running the checks; a check may change or clear it.
	Received string
}

// Verdict is a check's opinion on a message. A nil *Verdict means no opinion.
type Verdict struct {
	// Reject refuses the whole message.
	Reject *Reply
	// Header holds fields to prepend, each "Name: value", without the final CRLF
	// (a folded value carries CRLF + WSP inside). Authentication-Results goes here.
	Header []string
	// Mailbox files local copies there instead of INBOX (created if missing). The
	// first check that names one wins, so the order of Checks is their precedence.
	Mailbox string
	// Flags are set on local copies (for example $Junk, $Chat).
	Flags []string
	// Place files the copies of some accounts differently: per account, a mailbox
	// (used unless a check already named one for every copy) and more flags. COI's
	// filing is per account.
	Place map[int64]Placement
}

// Placement is where one account's copy goes and what flags it gets besides the
// message's.
type Placement struct {
	Mailbox string
	Flags   []string
}

// Check judges a complete message before it is stored. It may also rewrite m.Body
// (header scrubbing). An error is an internal failure: the client is told to retry.
type Check func(ctx context.Context, m *Message) (*Verdict, error)

// RcptCheck judges a recipient at RCPT time, after the built-in rules accepted it; a
// *Reply refuses that recipient (rate limits, STARTTLS required for a chatmail account).
type RcptCheck func(ctx context.Context, env *Envelope, r *Recipient) error

// Options configure a Pipeline. Zero values take the defaults noted.
type Options struct {
	// Hostname names this server in Received fields.
	Hostname string
	// MaxRecipients per transaction (default 1000).
	MaxRecipients int
	// MaxMessageBytes refuses larger messages (default 30 MiB).
	MaxMessageBytes int64
	// MaxHops refuses messages with more Received fields, as a loop (default 50).
	MaxHops    int
	RcptChecks []RcptCheck
	// SubmitChecks judge submitted messages before the built-in From rule, so that a
	// stricter rule (a chatmail domain's From must equal MAIL FROM) answers first
	// with its own reply.
	SubmitChecks []Check
	Checks       []Check
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
	// Queued, if set, is called after a delivery put something in the outbound
	// queue, so the queue can send it now instead of at its next scan.
	Queued func()
	// Stored, if set, is called after a message was committed with the local copies
	// made (push notifications, mailbox trimming); it must not fail the delivery.
	Stored func(ctx context.Context, m *Message, copies []store.Delivered)
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Pipeline applies coibox's delivery rules and hands messages to the store.
type Pipeline struct {
	store *store.Store
	opts  Options
	log   *slog.Logger
	m     *metrics.Metrics
}

// New returns a pipeline delivering into st.
func New(st *store.Store, opts Options) *Pipeline {
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 30 << 20
	}
	if opts.MaxHops <= 0 {
		opts.MaxHops = 50
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pipeline{store: st, opts: opts, log: opts.Logger, m: opts.Metrics}
}

// MaxMessageBytes is the size limit the pipeline enforces, for protocols to advertise.
func (p *Pipeline) MaxMessageBytes() int64 { return p.opts.MaxMessageBytes }

// MaxRecipients is the per-transaction recipient limit.
func (p *Pipeline) MaxRecipients() int { return p.opts.MaxRecipients }

// refuse counts a refusal and returns it.
func (p *Pipeline) refuse(env *Envelope, r *Reply) *Reply {
	p.m.Rejected(env.listener(), r.Reason)
	return r
}

// AddRecipient applies the recipient rules to rcpt and, if it is accepted, appends it
// to env.Recipients. A refusal is a *Reply; other errors are internal (answer 451).
// A recipient given twice is accepted once.
func (p *Pipeline) AddRecipient(ctx context.Context, env *Envelope, rcpt string) error {
	if env.Kind == Submission && env.AccountID == 0 {
		return p.refuse(env, ErrAuthRequired)
	}
	if len(env.Recipients) >= p.opts.MaxRecipients {
		return p.refuse(env, errTooManyRcpts(p.opts.MaxRecipients))
	}
	if env.Kind == Submission {
		if err := p.checkSender(ctx, env); err != nil {
			return err
		}
	}
	norm := store.Normalize(rcpt)
	if _, _, err := store.SplitAddress(norm); err != nil {
		return p.refuse(env, errBadAddress(rcpt))
	}
	for _, r := range env.Recipients {
		if store.Normalize(r.Address) == norm {
			return nil
		}
	}
	r := Recipient{Address: rcpt}
	// Most mail is for an account's own address: one read then tells both where it
	// goes and whether it fits, where Resolve plus the quota check would take three.
	acc, err := p.store.Account(ctx, norm)
	switch {
	case err == nil:
		if p.full(acc) {
			return p.refuse(env, errMailboxFull(rcpt))
		}
		r.Accounts = []int64{acc.ID}
		return p.accept(ctx, env, r)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("look up recipient %s: %w", rcpt, err)
	}
	res, err := p.store.Resolve(ctx, norm)
	switch {
	case errors.Is(err, store.ErrNotLocal):
		// Relaying needs a login: this is what keeps coibox from being an open relay.
		if env.AccountID == 0 {
			return p.refuse(env, errRelayDenied(rcpt))
		}
		r.Remote = true
	case errors.Is(err, store.ErrNotFound):
		return p.refuse(env, errUnknownUser(rcpt))
	case err != nil:
		return fmt.Errorf("resolve recipient %s: %w", rcpt, err)
	default:
		r.Accounts, r.Forward = res.Accounts, res.Forward
		if len(r.Accounts) == 0 && len(r.Forward) == 0 {
			return p.refuse(env, errUnknownUser(rcpt))
		}
		// Refuse now, while the client can still tell its user, if every mailbox the
		// address reaches is known to be full. One that fills up later fails at DATA.
		if len(r.Forward) == 0 {
			full, err := p.allFull(ctx, r.Accounts)
			if err != nil {
				return err
			}
			if full {
				return p.refuse(env, errMailboxFull(rcpt))
			}
		}
	}
	return p.accept(ctx, env, r)
}

// accept runs the recipient checks on a recipient the built-in rules let through.
func (p *Pipeline) accept(ctx context.Context, env *Envelope, r Recipient) error {
	for _, check := range p.opts.RcptChecks {
		if err := check(ctx, env, &r); err != nil {
			if rep, ok := AsReply(err); ok {
				return p.refuse(env, rep)
			}
			return fmt.Errorf("check recipient %s: %w", r.Address, err)
		}
	}
	env.Recipients = append(env.Recipients, r)
	return nil
}

// checkSender refuses a submission whose envelope sender the account may not use.
// The answer is kept in env, so a message to many recipients asks the store once.
func (p *Pipeline) checkSender(ctx context.Context, env *Envelope) error {
	if !env.senderChecked || env.checkedSender != env.Sender || env.checkedAccount != env.AccountID {
		ok, err := p.store.MaySendAs(ctx, env.AccountID, env.Sender)
		if err != nil {
			return fmt.Errorf("check sender %s: %w", env.Sender, err)
		}
		env.senderChecked, env.checkedSender, env.checkedAccount = true, env.Sender, env.AccountID
		env.senderErr = nil
		if !ok {
			env.senderErr = errSenderNotOwned(env.Sender, env.Login)
		}
	}
	if env.senderErr != nil {
		p.m.Rejected(env.listener(), metrics.ReasonSenderMismatch)
	}
	return env.senderErr
}

// allFull reports whether every account is at or over its quota.
func (p *Pipeline) allFull(ctx context.Context, ids []int64) (bool, error) {
	for _, id := range ids {
		a, err := p.store.AccountByID(ctx, id)
		if err != nil {
			return false, fmt.Errorf("read quota: %w", err)
		}
		if !p.full(a) {
			return false, nil
		}
	}
	return true, nil
}

func (p *Pipeline) full(a *store.Account) bool {
	if quota := p.store.QuotaLimit(a); quota > 0 && a.UsedBytes >= quota {
		return true
	}
	return a.QuotaMsgs > 0 && a.UsedMsgs >= a.QuotaMsgs
}

// Result is the outcome of an accepted message.
type Result struct {
	ID      string
	QueueID int64 // the outbound queue entry, 0 if nothing was queued
	Local   int   // copies stored in local mailboxes
	Queued  int   // remote recipients queued
	// Failed lists recipients that got nothing although the message was accepted for
	// others (a mailbox that filled up since RCPT). SMTP has one reply per message
	// after DATA, so they can only be told by a bounce.
	Failed []RcptFailure
}

// RcptFailure is one recipient that could not be delivered to.
type RcptFailure struct {
	Address string
	Err     *Reply
}

// Deliver runs the message checks and stores the message for every recipient at once:
// local copies and the outbound queue entry are one atomic store write. A refusal is a
// *Reply; any other error is internal and the message was not stored.
func (p *Pipeline) Deliver(ctx context.Context, m *Message) (*Result, error) {
	if m.ID == "" {
		m.ID = NewID()
	}
	lst := m.listener()
	if len(m.Recipients) == 0 {
		return nil, p.refuse(&m.Envelope, errNoRecipients)
	}
	if m.Kind == Submission && m.AccountID == 0 {
		return nil, p.refuse(&m.Envelope, ErrAuthRequired)
	}
	if int64(len(m.Body)) > p.opts.MaxMessageBytes {
		return nil, p.refuse(&m.Envelope, ErrTooBig)
	}
	p.m.MessageReceived(lst)
	// Every way in (port 25, submission, /mxdeliv) meets the same rule.
	if hasBareCR(m.Body) {
		return nil, p.refuse(&m.Envelope, ErrBareCR)
	}
	m.Body = normalizeNewlines(m.Body)
	h := scanHeader(m.Body)
	if h.received >= p.opts.MaxHops {
		return nil, p.refuse(&m.Envelope, errTooManyHops(h.received))
	}
	m.Received = receivedField(m, p.opts.Hostname, p.opts.Now())
	var header []string
	var mailbox string
	var flags []string
	place := map[int64]Placement{}
	run := func(checks []Check) error {
		for _, check := range checks {
			v, err := check(ctx, m)
			if err != nil {
				return fmt.Errorf("check message %s: %w", m.ID, err)
			}
			if v == nil {
				continue
			}
			if v.Reject != nil {
				return p.refuse(&m.Envelope, v.Reject)
			}
			header = append(header, v.Header...)
			if mailbox == "" {
				mailbox = v.Mailbox
			}
			flags = append(flags, v.Flags...)
			for id, pl := range v.Place {
				old := place[id]
				if old.Mailbox == "" {
					old.Mailbox = pl.Mailbox
				}
				old.Flags = append(old.Flags, pl.Flags...)
				place[id] = old
			}
		}
		return nil
	}
	if m.Kind == Submission {
		if err := run(p.opts.SubmitChecks); err != nil {
			return nil, err
		}
		if err := p.checkFrom(ctx, m, h); err != nil {
			return nil, err
		}
	}
	if err := run(p.opts.Checks); err != nil {
		return nil, err
	}

	d := &store.Delivery{Body: assemble(header, m.Received, m.Body)}
	// One copy per account, however many of its addresses were named.
	owners := map[int64][]int{} // account → indexes of recipients reaching it
	var remote []string
	seenRemote := map[string]bool{}
	addRemote := func(a string) {
		if k := store.Normalize(a); !seenRemote[k] {
			seenRemote[k] = true
			remote = append(remote, a)
		}
	}
	for i, r := range m.Recipients {
		for _, id := range r.Accounts {
			if _, ok := owners[id]; !ok {
				t := store.Target{AccountID: id, Mailbox: mailbox, Flags: flags}
				if pl, ok := place[id]; ok {
					if t.Mailbox == "" {
						t.Mailbox = pl.Mailbox
					}
					t.Flags = append(slices.Clip(flags), pl.Flags...)
				}
				d.Targets = append(d.Targets, t)
			}
			owners[id] = append(owners[id], i)
		}
		for _, f := range r.Forward {
			addRemote(f)
		}
		if r.Remote {
			addRemote(r.Address)
		}
	}
	if len(remote) > 0 {
		d.Remote = &store.Outbound{
			Sender:     m.Sender,
			Recipients: remote,
			AccountID:  m.AccountID,
			RequireTLS: m.RequireTLS,
			SMTPUTF8:   m.SMTPUTF8,
			EightBit:   m.EightBit,
		}
	}
	out, queueID, err := p.store.Deliver(ctx, d)
	if errors.Is(err, store.ErrStorageFull) {
		p.log.Error("message refused: storage full", "id", m.ID, "err", err)
		return nil, p.refuse(&m.Envelope, ErrStorageFull)
	}
	if err != nil {
		return nil, fmt.Errorf("store message %s: %w", m.ID, err)
	}

	res := &Result{ID: m.ID, QueueID: queueID}
	if queueID != 0 {
		res.Queued = len(remote)
		if p.opts.Queued != nil {
			p.opts.Queued()
		}
	}
	got := make([]bool, len(m.Recipients)) // whether each recipient got a copy somewhere
	for i, r := range m.Recipients {
		got[i] = r.Remote || len(r.Forward) > 0
	}
	var stored []store.Delivered
	for _, t := range out {
		if t.Err != nil {
			continue
		}
		res.Local++
		stored = append(stored, t)
		for _, i := range owners[t.AccountID] {
			got[i] = true
		}
	}
	if p.opts.Stored != nil && len(stored) > 0 {
		p.opts.Stored(ctx, m, stored)
	}
	for i, r := range m.Recipients {
		if !got[i] {
			res.Failed = append(res.Failed, RcptFailure{Address: r.Address, Err: errMailboxFull(r.Address)})
		}
	}
	if len(res.Failed) == len(m.Recipients) {
		// Nothing was stored: refuse the message, so the sender's server bounces it.
		return nil, p.refuse(&m.Envelope, res.Failed[0].Err)
	}
	for _, f := range res.Failed {
		p.m.Rejected(lst, f.Err.Reason)
		p.log.Info("recipient failed after DATA", "id", m.ID, "rcpt", f.Address, "reply", f.Err.Error())
	}
	p.m.Delivered(metrics.DestLocal, res.Local)
	p.m.Delivered(metrics.DestQueued, res.Queued)
	return res, nil
}

// checkFrom refuses a submitted message whose From addresses the account may not use.
func (p *Pipeline) checkFrom(ctx context.Context, m *Message, h headerInfo) error {
	addrs, err := fromAddresses(h)
	if err != nil {
		return p.refuse(&m.Envelope, errBadFrom(err.Error()))
	}
	for _, a := range addrs {
		ok, err := p.store.MaySendAs(ctx, m.AccountID, a)
		if err != nil {
			return fmt.Errorf("check From address %s: %w", a, err)
		}
		if !ok {
			return p.refuse(&m.Envelope, errFromNotOwned(a, m.Login))
		}
	}
	return nil
}

// assemble builds the stored message in one allocation: the checks' fields, the
// Received field, then the message as received.
func assemble(header []string, received string, body []byte) []byte {
	n := len(received) + len(body)
	for _, f := range header {
		n += len(f) + 2
	}
	out := make([]byte, 0, n)
	for _, f := range header {
		out = append(out, f...)
		out = append(out, '\r', '\n')
	}
	out = append(out, received...)
	return append(out, body...)
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns a random 16-character identifier for tracing a session or message.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return idEncoding.EncodeToString(b[:])
}
