package coi

import (
	"context"

	"github.com/coibox/coibox/deliver"
)

// Stored wakes the devices of accounts that just got a message (chatmail §9): the
// pipeline calls it after the commit. A failure costs a notification, never mail.
func (c *Chat) Stored(ctx context.Context, m *deliver.Message, accounts []int64) {
	if c.opts.Push == nil {
		return
	}
	from := firstFrom(m.Body)
	ps := c.profiles()
	for _, id := range accounts {
		a, p, err := ps.account(ctx, id)
		if err != nil || !p.Push {
			continue
		}
		if err := c.opts.Push.Trigger(ctx, id, a.Address, from); err != nil {
			c.log.Warn("chat: push trigger", "account", a.Address, "err", err)
		}
	}
}
