package coi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coibox/coibox/coi/coiext"
	"github.com/coibox/coibox/coi/push"
	"github.com/coibox/coibox/imapd"
	"github.com/coibox/coibox/store"
)

// The METADATA entries the chat rules serve (chatmail §2.3), lower case as imapd
// hands them over.
const (
	entryAdmin      = "/shared/admin"
	entryComment    = "/shared/comment"
	entryIrohRelay  = "/shared/vendor/deltachat/irohrelay"
	entryTURN       = "/shared/vendor/deltachat/turn"
	entryMaxRcpts   = "/shared/vendor/deltachat/maxsmtprecipients"
	entryAppVersion = "/shared/vendor/deltachat/appversions"
	entryDeviceTok  = "/private/devicetoken"
	vendorDeltaChat = "/shared/vendor/deltachat"
)

// Capabilities lists what an account's domain adds after login (chatmail §2.1):
// XCHATMAIL only on chatmail domains, XDELTAPUSH where push is on, each hidden by
// its server switch.
func (c *Chat) Capabilities(acc *store.Account) []string {
	p, err := c.Profile(context.Background(), acc.DomainID)
	if err != nil {
		c.log.Error("chat: capabilities", "account", acc.Address, "err", err)
		return nil
	}
	var caps []string
	if c.opts.COI != nil {
		caps = append(caps, "COI")
		if c.opts.WebPush != nil {
			caps = append(caps, "WEBPUSH")
		}
	}
	if p.Chatmail && p.XChatmail && !c.opts.HideXChatmail {
		caps = append(caps, "XCHATMAIL")
	}
	if p.Push && !c.opts.HideXDeltaPush {
		caps = append(caps, "XDELTAPUSH")
	}
	return caps
}

// Owns implements imapd.MetadataHook: the server entries of §2.3, and the device
// token on INBOX when push tokens are kept.
func (c *Chat) Owns(mailbox, entry string) bool {
	if c.ownsWebPush(mailbox, entry) {
		return true
	}
	if mailbox == "" && c.opts.COI != nil && (entry == strings.TrimSuffix(coiext.Prefix, "/") || strings.HasPrefix(entry, coiext.Prefix)) {
		return true
	}
	if mailbox == "" {
		switch entry {
		case entryAdmin, entryComment, entryIrohRelay, entryTURN, entryMaxRcpts, entryAppVersion, vendorDeltaChat:
			return true
		}
		return false
	}
	return c.opts.Push != nil && strings.EqualFold(mailbox, "INBOX") && entry == entryDeviceTok
}

// GetMetadata implements imapd.MetadataHook.
func (c *Chat) GetMetadata(ctx context.Context, acc *store.Account, mailbox string, names []string, depth int) ([]imapd.MetadataEntry, error) {
	if len(names) > 0 && c.ownsWebPush(mailbox, names[0]) {
		return c.webPushGet(ctx, acc, names, depth)
	}
	if mailbox == "" && c.opts.COI != nil && len(names) > 0 && strings.HasPrefix(names[0]+"/", coiext.Prefix) {
		es, err := c.opts.COI.Get(ctx, acc, names, depth)
		if err != nil {
			return nil, err
		}
		out := make([]imapd.MetadataEntry, len(es))
		for i, e := range es {
			out[i] = imapd.MetadataEntry{Name: e.Name, Value: e.Value}
		}
		return out, nil
	}
	if mailbox != "" {
		tokens, err := c.opts.Push.Get(ctx, acc.ID, c.opts.Now())
		if err != nil || tokens == "" {
			return nil, err
		}
		return []imapd.MetadataEntry{{Name: entryDeviceTok, Value: []byte(tokens)}}, nil
	}
	p, err := c.Profile(ctx, acc.DomainID)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	if p.AdminContact != "" {
		values[entryAdmin] = "mailto:" + p.AdminContact
	}
	if p.IrohRelay != "" {
		values[entryIrohRelay] = p.IrohRelay
	}
	if c.opts.TURN != nil {
		if v := c.opts.TURN(p, c.opts.Now()); v != "" {
			values[entryTURN] = v
		}
	}
	if c.opts.AppVersions != "" {
		values[entryAppVersion] = c.opts.AppVersions
	}
	if p.Push {
		// ≥2.58 cores read this key as "push is supported" (chatmail §2.3).
		values[entryMaxRcpts] = strconv.Itoa(c.opts.MaxSMTPRecipients)
	}
	var out []imapd.MetadataEntry
	for _, name := range names {
		if v, ok := values[name]; ok {
			out = append(out, imapd.MetadataEntry{Name: name, Value: []byte(v)})
		}
		if name == vendorDeltaChat && depth != 0 {
			for _, k := range []string{entryAppVersion, entryIrohRelay, entryMaxRcpts, entryTURN} {
				if v, ok := values[k]; ok {
					out = append(out, imapd.MetadataEntry{Name: k, Value: []byte(v)})
				}
			}
		}
	}
	return out, nil
}

// SetMetadata implements imapd.MetadataHook: server entries are read-only; the
// device token adds to the account's set (chatmail §9).
func (c *Chat) SetMetadata(ctx context.Context, acc *store.Account, mailbox string, entries []imapd.MetadataEntry) error {
	if len(entries) > 0 && c.ownsWebPush(mailbox, entries[0].Name) {
		for _, e := range entries {
			if !c.ownsWebPush(mailbox, e.Name) {
				return &imapd.CommandError{Code: "CANNOT", Text: "WebPush and other entries cannot be set together"}
			}
		}
		return c.webPushSet(ctx, acc, entries)
	}
	if mailbox == "" && c.opts.COI != nil && len(entries) > 0 && strings.HasPrefix(entries[0].Name, coiext.Prefix) {
		es := make([]coiext.Entry, len(entries))
		for i, e := range entries {
			if !strings.HasPrefix(e.Name, coiext.Prefix) {
				return &imapd.CommandError{Code: "CANNOT", Text: "COI and other entries cannot be set together"}
			}
			es[i] = coiext.Entry{Name: e.Name, Value: e.Value}
		}
		return cannot(c.opts.COI.Set(ctx, acc, es))
	}
	if mailbox == "" {
		return &imapd.CommandError{Code: "NOPERM", Text: "Server entries are read-only"}
	}
	for _, e := range entries {
		if e.Value == nil {
			continue // deleting a token is not how tokens go (they expire)
		}
		err := c.opts.Push.Set(ctx, acc.ID, e.Value, c.opts.Now())
		switch {
		case errors.Is(err, push.ErrTooLarge):
			return &imapd.CommandError{Code: "METADATA MAXSIZE " + strconv.Itoa(push.MaxTokenSize), Text: "Device token too long"}
		case errors.Is(err, push.ErrBadToken):
			return &imapd.CommandError{Code: "CANNOT", Text: "Invalid device token"}
		case err != nil:
			return fmt.Errorf("set device token: %w", err)
		}
	}
	return nil
}

// SeenHook returns COI's seen-mode move for imapd, nil without COI.
func (c *Chat) SeenHook() imapd.SeenHook {
	if c.opts.COI == nil {
		return nil
	}
	return c.opts.COI
}

// mailboxes is the imapd.MailboxHook of the COI folder rules (coiext, §5).
type mailboxes struct{ x *coiext.Ext }

// MailboxHook returns the folder rules for imapd, nil without COI.
func (c *Chat) MailboxHook() imapd.MailboxHook {
	if c.opts.COI == nil {
		return nil
	}
	return mailboxes{c.opts.COI}
}

func (m mailboxes) Deleting(ctx context.Context, acc *store.Account, name string) error {
	return cannot(m.x.Deleting(ctx, acc, name))
}

func (m mailboxes) Renaming(ctx context.Context, acc *store.Account, from, to string) error {
	return cannot(m.x.Renaming(ctx, acc, from, to))
}

func (m mailboxes) Created(ctx context.Context, acc *store.Account, name string) error {
	return cannot(m.x.Created(ctx, acc, name))
}

// cannot turns a coiext refusal into NO [CANNOT].
func cannot(err error) error {
	var ce *coiext.Error
	if errors.As(err, &ce) {
		return &imapd.CommandError{Code: "CANNOT", Text: ce.Text}
	}
	return err
}
