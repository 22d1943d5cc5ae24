package coi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coibox/coibox/coi/webpush"
	"github.com/coibox/coibox/imapd"
	"github.com/coibox/coibox/store"
)

// The IMAP WebPush extension's METADATA entries (coi spec §8.1) go through
// package webpush; the store keeps each subscription's stored form (which holds
// the validation secret) and only webpush decides what a client may read of it.

// ownsWebPush reports whether entry belongs to the WebPush extension.
func (c *Chat) ownsWebPush(mailbox, entry string) bool {
	return c.opts.WebPush != nil && mailbox == "" && (entry == webpush.EntryPrefix || strings.HasPrefix(entry, webpush.EntryPrefix+"/"))
}

// webPushGet answers GETMETADATA for WebPush names.
func (c *Chat) webPushGet(ctx context.Context, acc *store.Account, names []string, depth int) ([]imapd.MetadataEntry, error) {
	stored, err := c.subscriptions(ctx, acc.ID)
	if err != nil {
		return nil, err
	}
	var out []imapd.MetadataEntry
	public := func(id string, v []byte) {
		if p, ok := c.opts.WebPush.Public(v); ok {
			out = append(out, imapd.MetadataEntry{Name: webpush.SubscriptionEntry(id), Value: p})
		} else if err := c.removeSubscription(ctx, acc.ID, id, v); err != nil {
			c.log.Warn("webpush: drop expired subscription", "err", err)
		}
	}
	for _, name := range names {
		kind, id := webpush.ParseEntry(name)
		switch {
		case kind == webpush.EntryVapid:
			out = append(out, imapd.MetadataEntry{Name: name, Value: []byte(c.opts.WebPush.Key().PublicPEM())})
		case kind == webpush.EntrySubscription:
			if v, ok := stored[id]; ok {
				public(id, v)
			}
		case depth != 0 && (kind == webpush.EntrySubscriptions || name == webpush.EntryPrefix):
			if name == webpush.EntryPrefix && depth == 1 {
				out = append(out, imapd.MetadataEntry{Name: webpush.VapidEntry, Value: []byte(c.opts.WebPush.Key().PublicPEM())})
				continue
			}
			if name == webpush.EntryPrefix {
				out = append(out, imapd.MetadataEntry{Name: webpush.VapidEntry, Value: []byte(c.opts.WebPush.Key().PublicPEM())})
			}
			for id, v := range stored {
				public(id, v)
			}
		}
	}
	return out, nil
}

// webPushSet applies SETMETADATA of WebPush names all or nothing: every new stored
// value is worked out first (a subscription's validation push happens here), then
// they are written in one store write.
func (c *Chat) webPushSet(ctx context.Context, acc *store.Account, entries []imapd.MetadataEntry) error {
	stored, err := c.subscriptions(ctx, acc.ID)
	if err != nil {
		return err
	}
	var writes []store.MetaEntry
	var unsubscribed []string
	for _, e := range entries {
		kind, id := webpush.ParseEntry(e.Name)
		switch kind {
		case webpush.EntrySubscription:
			if e.Value == nil {
				unsubscribed = append(unsubscribed, id)
				delete(stored, id)
				writes = append(writes, store.MetaEntry{Name: e.Name})
				continue
			}
			v, err := c.opts.WebPush.Subscribe(ctx, acc.ID, id, e.Value, stored)
			if err != nil {
				return webPushErr(err)
			}
			stored[id] = v
			writes = append(writes, store.MetaEntry{Name: webpush.SubscriptionEntry(id), Value: v})
		case webpush.EntryValidate:
			cur, ok := stored[id]
			if !ok {
				return webPushErr(webpush.ErrInvalidValidation)
			}
			v, err := c.opts.WebPush.Validate(acc.ID, id, cur, e.Value)
			if err != nil {
				return webPushErr(err)
			}
			stored[id] = v
			writes = append(writes, store.MetaEntry{Name: webpush.SubscriptionEntry(id), Value: v})
		default:
			return webPushErr(webpush.ReadOnly(e.Name))
		}
	}
	if err := c.st.SetMetadata(ctx, acc.ID, 0, writes, 0); err != nil {
		return fmt.Errorf("store webpush subscriptions: %w", err)
	}
	for _, id := range unsubscribed {
		c.opts.WebPush.Unsubscribe(acc.ID, id)
	}
	return nil
}

// subscriptions are an account's stored subscription values by id.
func (c *Chat) subscriptions(ctx context.Context, accountID int64) (map[string][]byte, error) {
	es, err := c.st.Metadata(ctx, accountID, 0, []string{webpush.SubscriptionsEntry}, true)
	if err != nil {
		return nil, fmt.Errorf("read webpush subscriptions: %w", err)
	}
	out := map[string][]byte{}
	for _, e := range es {
		if kind, id := webpush.ParseEntry(e.Name); kind == webpush.EntrySubscription && e.Value != nil {
			out[id] = e.Value
		}
	}
	return out, nil
}

// removeSubscription deletes a subscription if it still holds stored: a 404 or 410
// for an old value must not delete one the client set again since. The store
// compares and deletes in one statement, so no SET can slip in between.
func (c *Chat) removeSubscription(ctx context.Context, accountID int64, id string, stored []byte) error {
	_, err := c.st.DeleteMetadataIf(ctx, accountID, 0, webpush.SubscriptionEntry(id), stored)
	return err
}

// WebPushStore gives package webpush the account's subscriptions, for its Options.
func (c *Chat) WebPushStore() (load func(context.Context, int64) (map[string][]byte, error), remove func(context.Context, int64, string, []byte) error) {
	return c.subscriptions, c.removeSubscription
}

// webPushErr turns webpush's refusals into NO [code] text.
func webPushErr(err error) error {
	var we *webpush.Error
	if errors.As(err, &we) {
		return &imapd.CommandError{Code: we.Code, Text: we.Text}
	}
	return err
}
