package coiext

import (
	"context"
	"fmt"

	"github.com/coibox/coibox/deliver"
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
					// Filing brings back a Chats folder that has gone (§5).
					if err := x.ensureFolders(ctx, id, false); err != nil {
						return nil, err
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
