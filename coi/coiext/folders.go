package coiext

import (
	"context"
	"strings"

	"github.com/coibox/coibox/store"
)

// The folder rules of §5: the Chats folder and the enabled entry stay in step.

var errNoRename = &Error{Text: "COI mailbox can't be renamed"}

// Deleting runs before a DELETE: deleting <root>/Chats disables COI first.
func (x *Ext) Deleting(ctx context.Context, acc *store.Account, name string) error {
	if name == x.Chats() {
		return x.disable(ctx, acc.ID)
	}
	return nil
}

// Renaming runs before a RENAME of from (or of an ancestor of <root>/Chats, D15):
// into Trash it disables COI first; anywhere else it is refused.
func (x *Ext) Renaming(ctx context.Context, acc *store.Account, from, to string) error {
	if from != x.Chats() && !strings.HasPrefix(x.Chats(), from+store.Separator) {
		return nil
	}
	trash, err := x.underTrash(ctx, acc.ID, to)
	if err != nil {
		return err
	}
	if !trash {
		return errNoRename
	}
	return x.disable(ctx, acc.ID)
}

// Created runs after a CREATE or RENAME made name: making <root>/Chats enables COI
// with the full effects (Contacts made too).
func (x *Ext) Created(ctx context.Context, acc *store.Account, name string) error {
	if name != x.Chats() {
		return nil
	}
	return x.Set(ctx, acc, []Entry{{Name: EntryEnabled, Value: []byte(enabledYes)}})
}

// underTrash reports whether name lies under Trash: its first component is Trash
// (in any case), or one of its ancestors has the \Trash special use.
func (x *Ext) underTrash(ctx context.Context, accountID int64, name string) (bool, error) {
	parts := strings.Split(name, store.Separator)
	if strings.EqualFold(parts[0], "Trash") {
		return true, nil
	}
	mbs, err := x.st.Mailboxes(ctx, accountID)
	if err != nil {
		return false, err
	}
	for _, mb := range mbs {
		if mb.SpecialUse == `\Trash` && strings.HasPrefix(name, mb.Name+store.Separator) {
			return true, nil
		}
	}
	return false, nil
}
