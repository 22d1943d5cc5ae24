package imapd

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

// selected is a session's view of its selected mailbox: what the client was told.
type selected struct {
	id          int64
	name        string
	readOnly    bool
	uidValidity uint32
	uids        []uint32 // ascending; index+1 is the sequence number
	flags       []uint16 // interned flag set of each message
	modseq      int64    // every change up to this MODSEQ has been reported
	tab         flagTable
}

// flagTable interns flag sets: most messages share a handful, so a view of 10,000
// messages costs two bytes per message for flags.
type flagTable struct {
	sets     [][]imap.Flag
	idx      map[string]uint16
	keywords []imap.Flag // every keyword seen, sorted; FLAGS and PERMANENTFLAGS list them
	newKw    bool        // a keyword appeared that the client has not been told of
	key      []byte
}

// unknownFlags marks a message whose flags did not fit the table (65,535 distinct
// sets): it is never equal to a real set, so its changes are always reported.
const unknownFlags = 0xffff

func (t *flagTable) intern(flags []string) uint16 {
	if t.idx == nil {
		t.idx = map[string]uint16{}
	}
	t.key = t.key[:0]
	for i, f := range flags {
		if i > 0 {
			t.key = append(t.key, ' ')
		}
		t.key = append(t.key, f...)
	}
	if id, ok := t.idx[string(t.key)]; ok {
		return id
	}
	if len(t.sets) >= unknownFlags {
		return unknownFlags
	}
	set := make([]imap.Flag, len(flags))
	for i, f := range flags {
		set[i] = imap.Flag(f)
		if !strings.HasPrefix(f, `\`) && !t.hasKeyword(f) {
			t.keywords = append(t.keywords, imap.Flag(f))
			sort.Slice(t.keywords, func(i, j int) bool { return t.keywords[i] < t.keywords[j] })
			t.newKw = true
		}
	}
	id := uint16(len(t.sets))
	t.sets = append(t.sets, set)
	t.idx[string(t.key)] = id
	return id
}

func (t *flagTable) hasKeyword(f string) bool {
	for _, k := range t.keywords {
		if strings.EqualFold(string(k), f) {
			return true
		}
	}
	return false
}

func (t *flagTable) get(id uint16) []imap.Flag {
	if int(id) < len(t.sets) {
		return t.sets[id]
	}
	return nil
}

var systemFlagList = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

func (t *flagTable) mailboxFlags() []imap.Flag {
	return append(append([]imap.Flag(nil), systemFlagList...), t.keywords...)
}

// writeFlags tells the client which flags the mailbox has (SELECT, and whenever a
// new keyword appears).
func (s *session) writeFlags(v *selected) {
	w := s.wr()
	all := v.tab.mailboxFlags()
	w.FlagsResponse(all)
	if v.readOnly {
		w.OK("*", wire.CodePermanentFlags(nil), "No permanent flags permitted")
	} else {
		w.OK("*", wire.CodePermanentFlags(append(all, imap.FlagWildcard)), "Flags permitted")
	}
	v.tab.newKw = false
}

// index returns the position of uid in the view.
func (v *selected) index(uid uint32) (int, bool) {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	return i, i < len(v.uids) && v.uids[i] == uid
}

func (v *selected) maxUID() uint32 {
	if len(v.uids) == 0 {
		return 0
	}
	return v.uids[len(v.uids)-1]
}

// resolve turns a sequence or UID set into view indexes, ascending. Sequence numbers
// beyond the view are an error; UIDs not in the view are skipped (RFC 9051 §6.4.9).
func (s *session) resolve(set imap.NumSet) ([]int, error) {
	v := s.sel
	if imap.IsSearchRes(set) {
		var out []int
		for _, u := range s.saved {
			if i, ok := v.index(u); ok {
				out = append(out, i)
			}
		}
		return out, nil
	}
	// Each range marks view positions; overlapping ranges ("1:*,1:*,…") cost no
	// more than one, whatever their number.
	n := len(v.uids)
	var mark []bool
	first, last := -1, -1 // the only range, while there is one
	add := func(lo, hi int) {
		if lo > hi {
			return
		}
		if mark == nil && first < 0 {
			first, last = lo, hi
			return
		}
		if mark == nil {
			mark = make([]bool, n)
			for i := first; i <= last; i++ {
				mark[i] = true
			}
		}
		for i := lo; i <= hi; i++ {
			mark[i] = true
		}
	}
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = uint32(n)
			}
			if stop == 0 {
				stop = uint32(n)
			}
			if start > stop {
				start, stop = stop, start
			}
			if start == 0 || stop > uint32(n) {
				return nil, bad("Invalid message sequence number %s (the mailbox has %d messages)", clip(set.String()), n)
			}
			add(int(start-1), int(stop-1))
		}
	case imap.UIDSet:
		maxUID := v.maxUID()
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = maxUID
			}
			if stop == 0 {
				stop = maxUID
			}
			if start > stop {
				start, stop = stop, start
			}
			lo := sort.Search(n, func(i int) bool { return v.uids[i] >= start })
			hi := sort.Search(n, func(i int) bool { return v.uids[i] > stop }) - 1
			add(lo, hi)
		}
	}
	var out []int
	switch {
	case mark != nil:
		for i, m := range mark {
			if m {
				out = append(out, i)
			}
		}
	case first >= 0:
		out = make([]int, 0, last-first+1)
		for i := first; i <= last; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

func (s *session) cmdSelect(ctx context.Context, cmd *wire.Command) error {
	sa, err := cmd.Select()
	if err != nil {
		return err
	}
	if sa.QResync != nil && !s.qresync {
		return bad("QRESYNC parameter without ENABLE QRESYNC")
	}
	if sa.CondStore {
		s.condstore = true
	}
	if s.sel != nil {
		s.sel, s.state = nil, stateAuth
		s.wr().OK("*", wire.CodeClosed, "Previous mailbox closed")
	}
	mb, err := s.srv.st.Mailbox(ctx, s.acc.ID, sa.Mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return no(wire.CodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return err
	}
	// Take the pending poke before the snapshot: a change committed after this line
	// pokes again, so the next update sees whatever the snapshot missed.
	s.drainPoke()
	mb, metas, err := s.srv.st.Snapshot(ctx, mb.ID)
	if err != nil {
		return err
	}
	v := &selected{
		id: mb.ID, name: mb.Name, readOnly: cmd.Name == "EXAMINE", uidValidity: mb.UIDValidity,
		uids: make([]uint32, len(metas)), flags: make([]uint16, len(metas)), modseq: mb.HighestModSeq,
	}
	firstUnseen := 0
	for i, m := range metas {
		v.uids[i] = m.UID
		v.flags[i] = v.tab.intern(m.Flags)
		if firstUnseen == 0 && !hasFlag(m.Flags, store.FlagSeen) {
			firstUnseen = i + 1
		}
	}
	w := s.wr()
	s.writeFlags(v)
	w.Exists(uint32(len(v.uids)))
	if !s.rev2 {
		w.Recent(0)
		if firstUnseen > 0 {
			w.OK("*", wire.CodeUnseen(uint32(firstUnseen)), "First unseen")
		}
	}
	w.OK("*", wire.CodeUIDValidity(mb.UIDValidity), "UIDs valid")
	w.OK("*", wire.CodeUIDNext(imap.UID(mb.UIDNext)), "Predicted next UID")
	w.OK("*", wire.CodeHighestModSeq(uint64(mb.HighestModSeq)), "Highest")
	if s.rev2 {
		w.List("LIST", &imap.ListData{Delim: '/', Mailbox: mb.Name})
	}
	if q := sa.QResync; q != nil && q.UIDValidity == mb.UIDValidity {
		if err := s.qresyncSelect(ctx, v, q, metas); err != nil {
			return err
		}
	}
	s.sel, s.state = v, stateSelected
	if v.readOnly {
		return okCode(wire.CodeReadOnly, cmd.Name+" completed")
	}
	return okCode(wire.CodeReadWrite, cmd.Name+" completed")
}

// qresyncSelect reports what changed since the client's last session (RFC 7162 §3.2.5).
func (s *session) qresyncSelect(ctx context.Context, v *selected, q *wire.QResyncArgs, metas []store.MsgMeta) error {
	gone, err := s.srv.st.ExpungedSince(ctx, v.id, int64(q.ModSeq))
	if err != nil {
		return err
	}
	var vanished imap.UIDSet
	for _, u := range gone {
		if q.KnownUIDs == nil || q.KnownUIDs.Contains(imap.UID(u)) {
			vanished.AddNum(imap.UID(u))
		}
	}
	w := s.wr()
	if len(vanished) > 0 {
		w.Vanished(vanished, true)
	}
	for i, m := range metas {
		if m.ModSeq > int64(q.ModSeq) {
			w.FetchStart(uint32(i + 1))
			w.FetchUID(imap.UID(m.UID))
			w.FetchFlags(v.tab.get(v.flags[i]))
			w.FetchModSeq(uint64(m.ModSeq))
			w.FetchEnd()
		}
	}
	return nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

func (s *session) drainPoke() {
	if s.sub == nil {
		return
	}
	select {
	case <-s.sub.C:
	default:
	}
}

func (s *session) deselect() {
	s.sel, s.state = nil, stateAuth
}

func (s *session) cmdClose(ctx context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	v := s.sel
	s.deselect()
	if cmd.Name == "CLOSE" && !v.readOnly {
		// Silently: CLOSE reports no EXPUNGE.
		if _, err := s.srv.st.Expunge(ctx, v.id, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *session) cmdExpunge(ctx context.Context, cmd *wire.Command) error {
	var uids []uint32
	if cmd.UID {
		set, err := cmd.NumSetArg()
		if err != nil {
			return err
		}
		idx, err := s.resolve(set)
		if err != nil {
			return err
		}
		uids = make([]uint32, 0, len(idx))
		for _, i := range idx {
			uids = append(uids, s.sel.uids[i])
		}
		if len(uids) == 0 {
			return nil
		}
	} else if err := cmd.NoArgs(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return no(wire.CodeReadOnly, "Mailbox is read-only")
	}
	gone, err := s.srv.st.Expunge(ctx, s.sel.id, uids)
	if err != nil {
		return s.storeErr(err)
	}
	s.reportExpunged(gone)
	return nil
}

// reportExpunged removes UIDs from the view and tells the client: EXPUNGE with
// sequence numbers (highest first, so none shifts), or VANISHED under QRESYNC.
func (s *session) reportExpunged(gone []uint32) {
	v := s.sel
	var idx []int
	var vanished imap.UIDSet
	for _, u := range gone {
		if i, ok := v.index(u); ok {
			idx = append(idx, i)
			vanished.AddNum(imap.UID(u))
		}
	}
	if len(idx) == 0 {
		return
	}
	sort.Ints(idx)
	w := s.wr()
	if s.qresync {
		w.Vanished(vanished, false)
	} else {
		for k := len(idx) - 1; k >= 0; k-- {
			w.Expunge(uint32(idx[k] + 1))
		}
	}
	// Compact in one pass.
	j, k := 0, 0
	for i := range v.uids {
		if k < len(idx) && idx[k] == i {
			k++
			continue
		}
		v.uids[j], v.flags[j] = v.uids[i], v.flags[i]
		j++
	}
	v.uids, v.flags = v.uids[:j], v.flags[:j]
}

// update reports what other sessions (and deliveries) changed in the selected
// mailbox since the view was last brought up to date. Unless force, it reads the
// store only after a poke.
func (s *session) update(ctx context.Context, force bool) error {
	v := s.sel
	if v == nil || s.sub == nil {
		return nil
	}
	if !force {
		select {
		case <-s.sub.C:
		default:
			return nil
		}
	}
	mb, changed, gone, err := s.srv.st.Changes(ctx, v.id, v.modseq)
	if errors.Is(err, store.ErrNotFound) {
		s.wr().StatusResponse("*", wire.BYE, "", "The selected mailbox was deleted by another session")
		_ = s.flush()
		return errClose
	}
	if err != nil {
		return err
	}
	s.reportExpunged(gone)
	w := s.wr()
	last := v.maxUID()
	n0 := len(v.uids)
	var flagChanged []int
	for _, m := range changed {
		if m.UID > last {
			v.uids = append(v.uids, m.UID)
			v.flags = append(v.flags, v.tab.intern(m.Flags))
			continue
		}
		i, ok := v.index(m.UID)
		if !ok {
			continue
		}
		if id := v.tab.intern(m.Flags); id != v.flags[i] || id == unknownFlags {
			v.flags[i] = id
			flagChanged = append(flagChanged, i)
		}
	}
	if v.tab.newKw {
		s.writeFlags(v)
	}
	for _, i := range flagChanged {
		w.FetchStart(uint32(i + 1))
		w.FetchUID(imap.UID(v.uids[i]))
		w.FetchFlags(v.tab.get(v.flags[i]))
		if s.condstore {
			w.FetchModSeq(uint64(modseqOf(changed, v.uids[i])))
		}
		w.FetchEnd()
	}
	if len(v.uids) != n0 {
		w.Exists(uint32(len(v.uids)))
	}
	if mb.HighestModSeq > v.modseq {
		v.modseq = mb.HighestModSeq
	}
	return nil
}

func modseqOf(ms []store.MsgMeta, uid uint32) int64 {
	i := sort.Search(len(ms), func(i int) bool { return ms[i].UID >= uid })
	if i < len(ms) && ms[i].UID == uid {
		return ms[i].ModSeq
	}
	return 0
}

// storeErr maps store errors to responses.
func (s *session) storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no(wire.CodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrExists):
		return no(wire.CodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrInboxName):
		return no(wire.CodeCannot, "INBOX cannot be deleted or created, nor another mailbox renamed to it")
	case errors.Is(err, store.ErrBadName):
		return no(wire.CodeCannot, "Invalid mailbox name")
	case errors.Is(err, store.ErrOverQuota):
		return no(wire.CodeOverQuota, "Quota exceeded")
	case errors.Is(err, store.ErrMetadataTooMany):
		return no(wire.CodeMetadataTooMany, "Too many metadata entries")
	case errors.Is(err, context.Canceled):
		return errClose
	}
	return err
}
