package coi

import (
	"context"
	"slices"

	"github.com/coibox/coibox/coi/coiext"
	"github.com/coibox/coibox/coi/webpush"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/store"
)

// Stored wakes the devices of accounts that just got a message: Delta Chat's push
// tokens (chatmail §9) and WebPush subscriptions (coi spec §8.6). The pipeline calls
// it after the commit. A failure costs a notification, never mail.
func (c *Chat) Stored(ctx context.Context, m *deliver.Message, copies []store.Delivered) {
	if c.opts.WebPush != nil {
		for _, d := range copies {
			mailbox := d.Mailbox
			if mailbox == "" {
				mailbox = "INBOX"
			}
			c.opts.WebPush.Notify(webpush.Delivery{Account: d.AccountID, Mailbox: mailbox, UIDValidity: d.UIDValidity, UID: d.UID,
				Chat: slices.Contains(d.Flags, coiext.ChatKeyword), Message: m.Body})
		}
	}
	if c.opts.Push == nil {
		return
	}
	from := firstFrom(m.Body)
	ps := c.profiles()
	for _, d := range copies {
		id := d.AccountID
		a, p, err := ps.account(ctx, id)
		if err != nil || !p.Push {
			continue
		}
		if err := c.opts.Push.Trigger(ctx, id, a.Address, from); err != nil {
			c.log.Warn("chat: push trigger", "account", a.Address, "err", err)
		}
	}
}
