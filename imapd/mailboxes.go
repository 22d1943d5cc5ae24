package imapd

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

func (s *session) cmdCreate(ctx context.Context, cmd *wire.Command) error {
	a := cmd.Args
	if err := a.SP(); err != nil {
		return err
	}
	name, err := a.Mailbox()
	if err != nil {
		return err
	}
	var use string
	if a.MoreArgs() {
		// CREATE-SPECIAL-USE (RFC 6154): (USE (\Sent)).
		_ = a.SP()
		err := a.List(func() error {
			if err := a.Expect("USE"); err != nil {
				return err
			}
			if err := a.SP(); err != nil {
				return err
			}
			return a.List(func() error {
				f, err := a.Flag()
				if err != nil {
					return err
				}
				if use != "" {
					return no(wire.Code("USEATTR"), "Only one special-use attribute per mailbox")
				}
				use = specialUse(string(f))
				if use == "" {
					return no(wire.Code("USEATTR"), "Unsupported special-use attribute %s", clip(string(f)))
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	if err := a.End(); err != nil {
		return err
	}
	// A trailing separator only says children will follow (RFC 9051 §6.3.4).
	name = strings.TrimSuffix(name, store.Separator)
	if strings.EqualFold(name, "INBOX") {
		return no(wire.CodeAlreadyExists, "INBOX always exists")
	}
	if _, err := s.srv.st.CreateMailbox(ctx, s.acc.ID, name, use); err != nil {
		return s.storeErr(err)
	}
	if h := s.srv.opts.MailboxHook; h != nil {
		if err := h.Created(ctx, s.acc, store.CanonicalName(name)); err != nil {
			return hookErr(err)
		}
	}
	return nil
}

func specialUse(f string) string {
	for _, u := range []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`} {
		if strings.EqualFold(u, f) {
			return u
		}
	}
	return ""
}

func (s *session) cmdDelete(ctx context.Context, cmd *wire.Command) error {
	name, err := cmd.Mailbox()
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return no(wire.CodeCannot, "INBOX cannot be deleted")
	}
	if h := s.srv.opts.MailboxHook; h != nil {
		if err := h.Deleting(ctx, s.acc, store.CanonicalName(name)); err != nil {
			return hookErr(err)
		}
	}
	if s.sel != nil && s.sel.name == store.CanonicalName(name) {
		s.deselect()
	}
	if err := s.srv.st.DeleteMailbox(ctx, s.acc.ID, name); err != nil {
		return s.storeErr(err)
	}
	return nil
}

func (s *session) cmdRename(ctx context.Context, cmd *wire.Command) error {
	from, to, err := cmd.Rename()
	if err != nil {
		return err
	}
	// A child of the source must not land on an existing name (left behind when
	// its parent was deleted); the store would fail on its unique index.
	mbs, err := s.srv.st.Mailboxes(ctx, s.acc.ID)
	if err != nil {
		return err
	}
	cf, ct := store.CanonicalName(from)+store.Separator, store.CanonicalName(to)+store.Separator
	if strings.HasPrefix(ct, cf) && from != "INBOX" {
		return no(wire.CodeCannot, "Cannot move a mailbox into itself")
	}
	names := make(map[string]bool, len(mbs))
	for _, mb := range mbs {
		names[mb.Name] = true
	}
	for _, mb := range mbs {
		if strings.HasPrefix(mb.Name, cf) && names[ct+mb.Name[len(cf):]] {
			return no(wire.CodeAlreadyExists, "Mailbox %s already exists", clip(ct+mb.Name[len(cf):]))
		}
	}
	hook := s.srv.opts.MailboxHook
	if hook != nil {
		if err := hook.Renaming(ctx, s.acc, store.CanonicalName(from), store.CanonicalName(to)); err != nil {
			return hookErr(err)
		}
	}
	if err := s.srv.st.RenameMailbox(ctx, s.acc.ID, from, to); err != nil {
		return s.storeErr(err)
	}
	if hook != nil {
		if err := hook.Created(ctx, s.acc, store.CanonicalName(to)); err != nil {
			return hookErr(err)
		}
	}
	if v := s.sel; v != nil && from != "INBOX" {
		from = store.CanonicalName(from)
		if v.name == from {
			v.name = store.CanonicalName(to)
		} else if strings.HasPrefix(v.name, from+store.Separator) {
			v.name = store.CanonicalName(to) + v.name[len(from):]
		}
	}
	return nil
}

func (s *session) cmdSubscribe(ctx context.Context, cmd *wire.Command) error {
	name, err := cmd.Mailbox()
	if err != nil {
		return err
	}
	if err := s.srv.st.SetSubscribed(ctx, s.acc.ID, name, cmd.Name == "SUBSCRIBE"); err != nil {
		return s.storeErr(err)
	}
	return nil
}

func (s *session) cmdNamespace(_ context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	s.wr().Raw("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")
	return nil
}

func (s *session) cmdList(ctx context.Context, cmd *wire.Command) error {
	la, err := cmd.List()
	if err != nil {
		return err
	}
	w := s.wr()
	lsub := cmd.Name == "LSUB"
	o := &la.Options
	if len(la.Patterns) == 1 && la.Patterns[0] == "" {
		// The hierarchy delimiter query (RFC 9051 §6.3.9).
		w.List(cmd.Name, &imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/', Mailbox: ""})
		return nil
	}
	if o.ReturnStatus != nil && o.ReturnStatus.HighestModSeq {
		s.condstore = true
	}
	mbs, err := s.srv.st.Mailboxes(ctx, s.acc.ID)
	if err != nil {
		return err
	}
	hasChildren := map[string]bool{}
	subChild := map[string]bool{}
	for _, mb := range mbs {
		for i := strings.LastIndex(mb.Name, store.Separator); i > 0; i = strings.LastIndex(mb.Name[:i], store.Separator) {
			hasChildren[mb.Name[:i]] = true
			if mb.Subscribed {
				subChild[mb.Name[:i]] = true
			}
		}
	}
	subscribedOnly := lsub || o.SelectSubscribed
	for i := range mbs {
		mb := &mbs[i]
		if !matchAny(mb.Name, la.Reference, la.Patterns) {
			continue
		}
		d := imap.ListData{Delim: '/', Mailbox: mb.Name}
		if subscribedOnly && !mb.Subscribed {
			if !(o.SelectRecursiveMatch && subChild[mb.Name]) {
				continue
			}
			d.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		} else if o.SelectRecursiveMatch && subChild[mb.Name] {
			d.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if o.SelectSpecialUse && mb.SpecialUse == "" {
			continue
		}
		if !lsub {
			if hasChildren[mb.Name] {
				d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
			} else {
				d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
			}
		}
		if (o.SelectSubscribed || o.ReturnSubscribed) && mb.Subscribed {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if mb.SpecialUse != "" && !lsub {
			d.Attrs = append(d.Attrs, imap.MailboxAttr(mb.SpecialUse))
		}
		if !la.Extended {
			d.ChildInfo = nil
		}
		if o.ReturnStatus != nil {
			d.Status = s.statusData(mb, o.ReturnStatus)
		}
		w.List(cmd.Name, &d)
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if strings.EqualFold(ref+p, "INBOX") {
			if name == "INBOX" {
				return true
			}
			continue
		}
		if imapserver.MatchList(name, '/', ref, p) {
			return true
		}
	}
	return false
}

func (s *session) cmdStatus(ctx context.Context, cmd *wire.Command) error {
	sa, err := cmd.Status()
	if err != nil {
		return err
	}
	mb, err := s.srv.st.Mailbox(ctx, s.acc.ID, sa.Mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return no(wire.CodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return err
	}
	if sa.Items.HighestModSeq {
		s.condstore = true
	}
	s.wr().Status(s.statusData(mb, &sa.Items))
	return nil
}

func (s *session) statusData(mb *store.Mailbox, o *imap.StatusOptions) *imap.StatusData {
	d := &imap.StatusData{Mailbox: mb.Name}
	u32 := func(n int64) *uint32 { v := uint32(max(n, 0)); return &v }
	if o.NumMessages {
		d.NumMessages = u32(mb.Messages)
	}
	if o.NumRecent {
		d.NumRecent = u32(0)
	}
	if o.UIDNext {
		d.UIDNext = imap.UID(mb.UIDNext)
	}
	if o.UIDValidity {
		d.UIDValidity = mb.UIDValidity
	}
	if o.NumUnseen {
		d.NumUnseen = u32(mb.Unseen)
	}
	if o.NumDeleted {
		d.NumDeleted = u32(mb.Deleted)
	}
	if o.Size {
		size := mb.Size
		d.Size = &size
	}
	if o.AppendLimit {
		d.AppendLimit = u32(s.srv.lim.MaxMessageSize)
	}
	if o.HighestModSeq {
		d.HighestModSeq = uint64(mb.HighestModSeq)
	}
	return d
}
