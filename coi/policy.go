package coi

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/coibox/coibox/coi/e2ee"
	"github.com/coibox/coibox/coi/mxdeliv"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/store"
)

// ListenerMXDeliv is the deliver.Envelope Listener of mail received over HTTPS
// /mxdeliv.
const ListenerMXDeliv = mxdeliv.Listener

// Replies chatmail peers and clients match by text (chatmail §6, §7, §8).
var (
	errStartTLS  = &deliver.Reply{Code: 530, Enhanced: [3]int{5, 7, 0}, Message: "Must issue a STARTTLS command first", Reason: metrics.ReasonPolicy}
	errCleartext = &deliver.Reply{Code: e2ee.ReplyCode, Enhanced: deliver.NoEnhanced, Message: e2ee.ReplyText, Reason: metrics.ReasonPolicy}
)

func errTooMuchMail(addr string) *deliver.Reply {
	// "4.7.1:" is part of the text the relay's clients and tests match, colon included.
	return &deliver.Reply{Code: 450, Enhanced: deliver.NoEnhanced, Message: "4.7.1: Too much mail from " + addr, Reason: metrics.ReasonPolicy}
}

func errInvalidFrom(from, mailFrom string) *deliver.Reply {
	if from == "" {
		return &deliver.Reply{Code: 500, Enhanced: deliver.NoEnhanced, Message: "Invalid FROM header", Reason: metrics.ReasonSenderMismatch}
	}
	return &deliver.Reply{Code: 500, Enhanced: deliver.NoEnhanced, Message: fmt.Sprintf("Invalid FROM <%s> for <%s>", from, mailFrom), Reason: metrics.ReasonSenderMismatch}
}

// profiles reads domain profiles once per message, however many recipients share a
// domain.
type profiles struct {
	c     *Chat
	byID  map[int64]profile.Profile
	accts map[int64]*store.Account
}

func (c *Chat) profiles() *profiles {
	return &profiles{c: c, byID: map[int64]profile.Profile{}, accts: map[int64]*store.Account{}}
}

func (ps *profiles) account(ctx context.Context, id int64) (*store.Account, profile.Profile, error) {
	a := ps.accts[id]
	if a == nil {
		var err error
		if a, err = ps.c.st.AccountByID(ctx, id); err != nil {
			return nil, profile.Profile{}, fmt.Errorf("read recipient account: %w", err)
		}
		ps.accts[id] = a
	}
	p, ok := ps.byID[a.DomainID]
	if !ok {
		var err error
		if p, err = ps.c.Profile(ctx, a.DomainID); err != nil {
			return nil, profile.Profile{}, err
		}
		ps.byID[a.DomainID] = p
	}
	return a, p, nil
}

// RcptCheck is the pipeline's recipient rule: STARTTLS for chatmail recipients of
// mail from other servers (§8), and the send rate of chatmail senders (§7.2),
// counted once per transaction, at its first recipient.
func (c *Chat) RcptCheck(ctx context.Context, env *deliver.Envelope, r *deliver.Recipient) error {
	switch env.Kind {
	case deliver.MX:
		// Only connections from other servers: local bounces (no address) and
		// /mxdeliv (HTTPS) never lack TLS in the sense of §8.
		if env.TLS != nil || !env.RemoteIP.IsValid() {
			return nil
		}
		ps := c.profiles()
		for _, id := range r.Accounts {
			_, p, err := ps.account(ctx, id)
			if err != nil {
				return err
			}
			if p.Chatmail {
				return errStartTLS
			}
		}
	case deliver.Submission:
		if len(env.Recipients) > 0 {
			return nil
		}
		p, ok, err := c.addressProfile(ctx, env.Sender)
		if err != nil || !ok || !p.Chatmail || p.SendRate.Count <= 0 {
			return err
		}
		if !c.sends.allow(store.Normalize(env.Sender), p.SendRate, c.opts.Now()) {
			return errTooMuchMail(env.Sender)
		}
	}
	return nil
}

// SubmitCheck runs on submitted messages before the pipeline's own From rule: on a
// chatmail domain the first From address must be MAIL FROM (§7.1), the message must
// be encrypted where §6 says so, and identifying fields are scrubbed (§7.3).
func (c *Chat) SubmitCheck(ctx context.Context, m *deliver.Message) (*deliver.Verdict, error) {
	p, ok, err := c.addressProfile(ctx, m.Sender)
	if err != nil {
		return nil, err
	}
	chat := ok && p.Chatmail
	if chat {
		from := firstFrom(m.Body)
		if from == "" || !strings.EqualFold(from, m.Sender) {
			return &deliver.Verdict{Reject: errInvalidFrom(from, m.Sender)}, nil
		}
	}
	env, err := c.e2eeEnvelope(ctx, &m.Envelope, ok && p.EnforceE2EEOutgoing)
	if err != nil {
		return nil, err
	}
	if d := e2ee.DecideSubmission(m.Body, env); !d.Accepted() {
		c.log.Info("chat: refused cleartext submission", "id", m.ID, "decision", d)
		return &deliver.Verdict{Reject: errCleartext}, nil
	}
	if chat && p.ScrubHeaders {
		m.Body = scrubSubmission(m.Body)
		m.Received = "" // the relay's clients are promised their address goes nowhere
	}
	return nil, nil
}

// IncomingCheck refuses mail from other servers that is not encrypted when a
// recipient enforces encryption (§6.3). It comes before the origin checks: what is
// not encrypted is refused as such, whoever signed it.
func (c *Chat) IncomingCheck(ctx context.Context, m *deliver.Message) (*deliver.Verdict, error) {
	if m.Kind != deliver.MX {
		return nil, nil
	}
	env, err := c.e2eeEnvelope(ctx, &m.Envelope, false)
	if err != nil {
		return nil, err
	}
	if d := e2ee.DecideIncoming(m.Body, env); !d.Accepted() {
		c.log.Info("chat: refused cleartext mail", "id", m.ID, "decision", d)
		return &deliver.Verdict{Reject: errCleartext}, nil
	}
	return nil, nil
}

// Check runs on every message after the origin checks: a copy for a chatmail
// account loses the fields that tell where it came from (§7.3).
func (c *Chat) Check(ctx context.Context, m *deliver.Message) (*deliver.Verdict, error) {
	chat, err := c.chatmailRecipient(ctx, &m.Envelope, func(p profile.Profile) bool { return p.Chatmail && p.ScrubHeaders })
	if err != nil || !chat {
		return nil, err
	}
	m.Body = scrubDelivery(m.Body)
	m.Received = ""
	return nil, nil
}

// InboundDKIMOnly reports whether mail from another server to env's recipients
// meets chatmail's origin rule (§8: aligned DKIM, no SPF or DMARC) instead of the
// usual checks, and without an Authentication-Results field: true when any local
// recipient is on a domain that requires it.
//
// Mail over HTTPS /mxdeliv has no client address to judge, so it always needs
// aligned DKIM, for ordinary recipients too (§11.1).
func (c *Chat) InboundDKIMOnly(ctx context.Context, env *deliver.Envelope) (bool, error) {
	if env.Listener == ListenerMXDeliv {
		return true, nil
	}
	return c.chatmailRecipient(ctx, env, func(p profile.Profile) bool { return p.InboundDKIMRequired })
}

// chatmailRecipient reports whether any local recipient's domain profile meets want.
func (c *Chat) chatmailRecipient(ctx context.Context, env *deliver.Envelope, want func(profile.Profile) bool) (bool, error) {
	ps := c.profiles()
	for _, r := range env.Recipients {
		for _, id := range r.Accounts {
			_, p, err := ps.account(ctx, id)
			if err != nil {
				return false, err
			}
			if want(p) {
				return true, nil
			}
		}
	}
	return false, nil
}

// e2eeEnvelope describes env's recipients for package e2ee: which are local, and
// which of those enforce incoming encryption.
func (c *Chat) e2eeEnvelope(ctx context.Context, env *deliver.Envelope, enforceOut bool) (e2ee.Envelope, error) {
	out := e2ee.Envelope{Sender: env.Sender, EnforceOutgoing: enforceOut}
	ps := c.profiles()
	for _, r := range env.Recipients {
		er := e2ee.Recipient{Address: r.Address, Local: len(r.Accounts) > 0}
		for _, id := range r.Accounts {
			a, _, err := ps.account(ctx, id)
			if err != nil {
				return e2ee.Envelope{}, err
			}
			if a.EnforceE2EEIncoming {
				er.EnforceIncoming = true
			}
		}
		out.Recipients = append(out.Recipients, er)
	}
	return out, nil
}

// firstFrom is the first address of the message's From field, "" when there is
// none or it cannot be read.
func firstFrom(msg []byte) string {
	v := headerValue(msg, "From")
	if v == "" {
		return ""
	}
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) == 0 {
		return ""
	}
	return list[0].Address
}

// gcra is the generic cell rate algorithm per key (chatmail §7.2): each key has a
// theoretical arrival time; a unit is allowed when it is no further ahead of now than
// the burst allows. Keys whose time has passed carry no state and are forgotten.
type gcra struct {
	mu  sync.Mutex
	tat map[string]time.Time
}

func newGCRA() *gcra { return &gcra{tat: map[string]time.Time{}} }

func (g *gcra) allow(key string, r profile.Rate, now time.Time) bool {
	interval := r.Per / time.Duration(r.Count)
	burst := max(r.Burst, 1)
	tolerance := time.Duration(burst-1) * interval
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.tat) > 100000 {
		for k, t := range g.tat {
			if !t.After(now) {
				delete(g.tat, k)
			}
		}
	}
	tat := g.tat[key]
	if tat.Before(now) {
		tat = now
	}
	if tat.Sub(now) > tolerance {
		return false
	}
	g.tat[key] = tat.Add(interval)
	return true
}

// FederateFor reports whether mail from senderDomain goes over HTTPS /mxdeliv first
// (§11.2): mail from chatmail domains does; ordinary mail keeps plain SMTP, so that
// large providers' MX hosts are not asked for a service they do not have.
func (c *Chat) FederateFor(senderDomain string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, ok, err := c.DomainProfile(ctx, senderDomain)
	return err == nil && ok && p.Chatmail
}
