package coiext

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/store"
)

// Check is the delivery pipeline's COI step (§7): for each local recipient whose
// enabled entry is "yes", a chat message gets $Chat, and with message-filter active
// (and the account's filing opt-in) it is stored in <root>/Chats instead of INBOX.
// It comes after the server's own policy checks, so a message they file elsewhere
// (Junk) stays there.
func (x *Ext) Check(ctx context.Context, m *deliver.Message) (*deliver.Verdict, error) {
	if !IsChat(m.Body) {
		return nil, nil
	}
	var place map[int64]deliver.Placement
	seen := map[int64]bool{}
	for _, r := range m.Recipients {
		for _, id := range r.Accounts {
			if seen[id] {
				continue
			}
			seen[id] = true
			on, mode, err := x.Enabled(ctx, id)
			if err != nil {
				return nil, err
			}
			if !on {
				continue
			}
			pl := deliver.Placement{Flags: []string{ChatKeyword}}
			if mode == ModeActive {
				acc, err := x.st.AccountByID(ctx, id)
				if err != nil {
					return nil, fmt.Errorf("read COI recipient: %w", err)
				}
				if x.filing(acc) {
					// Filing brings back a Chats folder that has gone (§5); a read
					// tells, so that a delivery writes nothing more when it is there.
					if _, err := x.st.Mailbox(ctx, id, x.Chats()); errors.Is(err, store.ErrNotFound) {
						if err := x.ensureFolders(ctx, id, false); err != nil {
							return nil, err
						}
					} else if err != nil {
						return nil, fmt.Errorf("find COI folder: %w", err)
					}
					pl.Mailbox = x.Chats()
				}
			}
			if place == nil {
				place = map[int64]deliver.Placement{}
			}
			place[id] = pl
		}
	}
	if place == nil {
		return nil, nil
	}
	return &deliver.Verdict{Place: place}, nil
}

// Seen is the seen mode's move (§7.2): chat messages in INBOX that a client just
// marked \Seen go to <root>/Chats, flags and INTERNALDATE kept, when the account's
// enabled entry is "yes", its message-filter "seen" and its filing opted in. It
// returns the INBOX UIDs moved. No push follows (D8).
func (x *Ext) Seen(ctx context.Context, acc *store.Account, mailbox string, mailboxID int64, msgs []store.MsgMeta) ([]uint32, error) {
	if mailbox != "INBOX" {
		return nil, nil
	}
	var uids []uint32
	for _, m := range msgs {
		if slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, ChatKeyword) }) {
			uids = append(uids, m.UID)
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	on, mode, err := x.Enabled(ctx, acc.ID)
	if err != nil || !on || mode != ModeSeen {
		return nil, err
	}
	fresh, err := x.st.AccountByID(ctx, acc.ID)
	if err != nil {
		return nil, fmt.Errorf("read COI account: %w", err)
	}
	if !x.filing(fresh) {
		return nil, nil
	}
	if err := x.ensureFolders(ctx, acc.ID, false); err != nil {
		return nil, err
	}
	dst, err := x.st.Mailbox(ctx, acc.ID, x.Chats())
	if err != nil {
		return nil, fmt.Errorf("find COI folder: %w", err)
	}
	res, err := x.st.Move(ctx, mailboxID, uids, dst.ID)
	if err != nil {
		return nil, fmt.Errorf("file seen chat messages: %w", err)
	}
	return res.Src, nil
}
