package imapd

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

func (s *session) cmdStore(ctx context.Context, cmd *wire.Command) error {
	sa, err := cmd.Store()
	if err != nil {
		return err
	}
	idx, err := s.resolve(sa.Set)
	if err != nil {
		return err
	}
	v := s.sel
	if v.readOnly {
		return no(wire.CodeReadOnly, "Mailbox is read-only")
	}
	flags := make([]string, 0, len(sa.Flags.Flags))
	for _, f := range sa.Flags.Flags {
		if strings.HasPrefix(string(f), `\`) {
			switch f {
			case imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft:
			case "\\Recent":
				continue // the server's own; clients cannot set it
			default:
				return bad("Unknown system flag %s", clip(string(f)))
			}
		}
		flags = append(flags, string(f))
	}
	if sa.HasUnchangedSince {
		s.enableCondstore()
	}
	op := store.FlagsSet
	switch sa.Flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	uids := v.uidsOf(idx)
	var up *store.FlagUpdate
	switch {
	case len(uids) == 0:
		up = &store.FlagUpdate{}
	case sa.HasUnchangedSince && sa.UnchangedSince == 0:
		// Every message has a MODSEQ above 0, so all fail the test.
		up = &store.FlagUpdate{Modified: uids}
	default:
		up, err = s.srv.st.StoreFlags(ctx, v.id, uids, op, flags, int64(sa.UnchangedSince))
		if err != nil {
			return s.storeErr(err)
		}
	}
	type result struct {
		meta    store.MsgMeta
		changed bool
	}
	res := make([]result, 0, len(up.Changed)+len(up.Unchanged))
	for _, m := range up.Changed {
		res = append(res, result{m, true})
	}
	for _, m := range up.Unchanged {
		res = append(res, result{m, false})
	}
	sort.Slice(res, func(i, j int) bool { return res[i].meta.UID < res[j].meta.UID })
	// Messages that gained \Seen with this STORE, for the SeenHook (COI's seen mode).
	var newlySeen []store.MsgMeta
	if s.srv.opts.SeenHook != nil && op != store.FlagsRemove {
		for _, r := range res {
			if !r.changed || !slices.Contains(r.meta.Flags, store.FlagSeen) {
				continue
			}
			if i, ok := v.index(r.meta.UID); ok && !slices.Contains(v.tab.get(v.msgs.flagsOf(i)), imap.FlagSeen) {
				newlySeen = append(newlySeen, r.meta)
			}
		}
	}
	set := make([]flagChange, 0, len(res))
	for k := range res {
		if i, ok := v.index(res[k].meta.UID); ok {
			set = append(set, flagChange{i, v.tab.intern(res[k].meta.Flags)})
		}
	}
	v.msgs.setFlags(set)
	w := s.wr()
	if v.tab.newKw {
		s.writeFlags(v)
	}
	c := v.msgs.cursor()
	for _, r := range res {
		i, ok := v.index(r.meta.UID)
		if !ok {
			continue
		}
		// .SILENT still reports the new MODSEQ of changed messages under CONDSTORE
		// (RFC 7162 §3.1.3), so the client can keep its cache current.
		if sa.Flags.Silent && !(s.condstore && r.changed) {
			continue
		}
		w.FetchStart(uint32(i + 1))
		if cmd.UID || s.condstore {
			w.FetchUID(imap.UID(r.meta.UID))
		}
		if !sa.Flags.Silent {
			w.FetchFlags(v.tab.get(c.flags(i)))
		}
		if s.condstore {
			w.FetchModSeq(uint64(r.meta.ModSeq))
		}
		w.FetchEnd()
	}
	if len(newlySeen) > 0 {
		moved, err := s.srv.opts.SeenHook.Seen(ctx, s.acc, v.name, v.id, newlySeen)
		if err != nil {
			return hookErr(err)
		}
		// A UID command may carry EXPUNGE (RFC 9051 §7.5.1); after a plain STORE the
		// client hears of the move with its next command.
		if len(moved) > 0 && cmd.UID {
			s.reportExpunged(moved)
		}
	}
	if len(up.Modified) > 0 {
		var set imap.NumSet
		if cmd.UID {
			var us imap.UIDSet
			for _, u := range up.Modified {
				us.AddNum(imap.UID(u))
			}
			set = us
		} else {
			var ss imap.SeqSet
			for _, u := range up.Modified {
				if i, ok := v.index(u); ok {
					ss.AddNum(uint32(i + 1))
				}
			}
			set = ss
		}
		return okCode(wire.CodeModified(set), "Conditional STORE failed for some messages")
	}
	return nil
}

func (s *session) cmdCopy(ctx context.Context, cmd *wire.Command) error {
	ca, err := cmd.Copy()
	if err != nil {
		return err
	}
	idx, err := s.resolve(ca.Set)
	if err != nil {
		return err
	}
	v := s.sel
	move := cmd.Name == "MOVE"
	if move && v.readOnly {
		return no(wire.CodeReadOnly, "Mailbox is read-only")
	}
	dst, err := s.srv.st.Mailbox(ctx, s.acc.ID, ca.Mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return no(wire.CodeTryCreate, "No such mailbox")
	}
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		return nil
	}
	uids := v.uidsOf(idx)
	var res *store.CopyResult
	if move {
		res, err = s.srv.st.Move(ctx, v.id, uids, dst.ID)
	} else {
		res, err = s.srv.st.Copy(ctx, v.id, uids, dst.ID)
	}
	if err != nil {
		return s.storeErr(err)
	}
	if len(res.Src) == 0 {
		return nil
	}
	var src, dsts imap.UIDSet
	for k := range res.Src {
		src.AddNum(imap.UID(res.Src[k]))
		dsts.AddNum(imap.UID(res.Dst[k]))
	}
	code := wire.CodeCopyUID(res.UIDValidity, src, dsts)
	if !move {
		return okCode(code, "COPY completed")
	}
	// RFC 6851: COPYUID goes in an untagged OK before the expunges.
	s.wr().OK("*", code, "Moved")
	s.reportExpunged(res.Src)
	return nil
}
