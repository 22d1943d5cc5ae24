package imapd

import (
	"cmp"
	"context"
	"errors"
	"slices"
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
	msgs        msgView // the messages: UIDs and flag sets by view index
	modseq      int64   // every change up to this MODSEQ has been reported
	tab         flagTable
}

// cacheKey names the selected mailbox in the server's summary cache.
func (s *session) cacheKey() boxKey {
	return boxKey{account: s.acc.ID, mailbox: s.sel.id, uidValidity: s.sel.uidValidity}
}

// msgView holds the messages of a view compactly: index i (sequence number i+1) has a
// UID and an interned flag set. UIDs are kept as runs of consecutive UIDs and flag
// sets as runs of equal sets, so a real mailbox (UIDs mostly consecutive, neighbours
// mostly sharing flags) costs a few bytes per run, not per message. Lookups by index
// or UID are binary searches over runs; a viewCursor makes ascending walks O(1) per
// step. Changes come in batches that rebuild the runs in one pass, so even a view
// with a run per message (alternating flags, sparse UIDs) is never quadratic.
type msgView struct {
	n     int
	uids  []uidRun  // ascending by start and by first
	flags []flagRun // ascending by start; neighbours have different ids
}

// uidRun: the message at index start has UID first, and each following message up to
// the next run's start has the next UID.
type uidRun struct{ start, first uint32 }

// flagRun: the messages from index start up to the next run's start have flag set id.
type flagRun struct {
	start uint32
	id    uint16
}

// flagChange sets message idx's flag set to id.
type flagChange struct {
	idx int
	id  uint16
}

func (m *msgView) len() int { return m.n }

func (m *msgView) uidEnd(r int) int {
	if r+1 < len(m.uids) {
		return int(m.uids[r+1].start)
	}
	return m.n
}

func (m *msgView) flagEnd(r int) int {
	if r+1 < len(m.flags) {
		return int(m.flags[r+1].start)
	}
	return m.n
}

// uidRunOf returns the run holding index i (0 <= i < n).
func (m *msgView) uidRunOf(i int) int {
	lo, hi := 0, len(m.uids) // the answer is the last run with start <= i
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if int(m.uids[mid].start) <= i {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func (m *msgView) flagRunOf(i int) int {
	lo, hi := 0, len(m.flags)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if int(m.flags[mid].start) <= i {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// uid returns the UID at index i (0 <= i < n).
func (m *msgView) uid(i int) uint32 {
	r := m.uids[m.uidRunOf(i)]
	return r.first + uint32(i) - r.start
}

// flagsOf returns the interned flag set at index i (0 <= i < n).
func (m *msgView) flagsOf(i int) uint16 {
	return m.flags[m.flagRunOf(i)].id
}

func (m *msgView) maxUID() uint32 {
	if m.n == 0 {
		return 0
	}
	r := m.uids[len(m.uids)-1]
	return r.first + uint32(m.n-1) - r.start
}

// lowerBound returns the index of the first message whose UID is >= uid (n if none).
func (m *msgView) lowerBound(uid uint32) int {
	lo, hi := -1, len(m.uids) // the last run with first <= uid
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if m.uids[mid].first <= uid {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo < 0 {
		return 0
	}
	r := m.uids[lo]
	end := m.uidEnd(lo)
	if off := uid - r.first; int64(off) < int64(end)-int64(r.start) {
		return int(r.start + off)
	}
	return end
}

// index returns the position of uid in the view.
func (m *msgView) index(uid uint32) (int, bool) {
	i := m.lowerBound(uid)
	return i, i < m.n && m.uid(i) == uid
}

// push adds a message after the last; uid must exceed every UID in the view.
func (m *msgView) push(uid uint32, id uint16) {
	if len(m.uids) == 0 || m.maxUID()+1 != uid {
		m.uids = append(m.uids, uidRun{uint32(m.n), uid})
	}
	if len(m.flags) == 0 || m.flags[len(m.flags)-1].id != id {
		m.flags = append(m.flags, flagRun{uint32(m.n), id})
	}
	m.n++
}

// appendUIDs appends the UIDs of indexes [lo, hi) to dst.
func (m *msgView) appendUIDs(dst []uint32, lo, hi int) []uint32 {
	if lo >= hi {
		return dst
	}
	for r := m.uidRunOf(lo); lo < hi; r++ {
		end := min(m.uidEnd(r), hi)
		u := m.uids[r].first + uint32(lo) - m.uids[r].start
		for ; lo < end; lo++ {
			dst = append(dst, u)
			u++
		}
	}
	return dst
}

// tight returns s with little spare capacity: a view lives as long as its session.
func tight[T any](s []T) []T {
	if cap(s)-len(s) <= 4+len(s)/16 {
		return s
	}
	t := make([]T, len(s))
	copy(t, s)
	return t
}

// compact trims the spare capacity a build left.
func (m *msgView) compact() {
	m.uids, m.flags = tight(m.uids), tight(m.flags)
}

// setFlags applies changes (any order; for a repeated index the first wins) in one
// pass over the runs.
func (m *msgView) setFlags(ch []flagChange) {
	byIdx := func(a, b flagChange) int { return cmp.Compare(a.idx, b.idx) }
	if !slices.IsSortedFunc(ch, byIdx) {
		slices.SortStableFunc(ch, byIdx)
	}
	// Drop repeats and changes that change nothing, so the common case allocates
	// nothing.
	c := m.cursor()
	k := 0
	for j, x := range ch {
		if x.idx >= 0 && x.idx < m.n && (j == 0 || ch[j-1].idx != x.idx) && c.flags(x.idx) != x.id {
			ch[k] = x
			k++
		}
	}
	ch = ch[:k]
	if len(ch) == 0 {
		return
	}
	out := make([]flagRun, 0, len(m.flags)+2*len(ch))
	emit := func(start int, id uint16) {
		if len(out) > 0 && out[len(out)-1].id == id {
			return
		}
		out = append(out, flagRun{uint32(start), id})
	}
	k = 0
	for r := range m.flags {
		pos, end, id := int(m.flags[r].start), m.flagEnd(r), m.flags[r].id
		for ; k < len(ch) && ch[k].idx < end; k++ {
			i := ch[k].idx
			if i > pos {
				emit(pos, id)
			}
			emit(i, ch[k].id)
			pos = i + 1
		}
		if pos < end {
			emit(pos, id)
		}
	}
	m.flags = tight(out)
}

// remove drops the messages at idx (ascending, each once) in one pass over the runs.
func (m *msgView) remove(idx []int) {
	if len(idx) == 0 {
		return
	}
	nu := make([]uidRun, 0, len(m.uids)+len(idx))
	nf := make([]flagRun, 0, len(m.flags)+1)
	j := 0 // the next index in the new view
	ur, fr := 0, 0
	// keep copies indexes [a, b) of the old view to the new one.
	keep := func(a, b int) {
		if a >= b {
			return
		}
		for ur+1 < len(m.uids) && int(m.uids[ur+1].start) <= a {
			ur++
		}
		for fr+1 < len(m.flags) && int(m.flags[fr+1].start) <= a {
			fr++
		}
		for i, jj := a, j; i < b; ur++ {
			e := min(m.uidEnd(ur), b)
			u := m.uids[ur].first + uint32(i) - m.uids[ur].start
			if l := len(nu); l == 0 || nu[l-1].first+uint32(jj)-nu[l-1].start != u {
				nu = append(nu, uidRun{uint32(jj), u})
			}
			jj += e - i
			i = e
			if i == b {
				break
			}
		}
		for i, jj := a, j; i < b; fr++ {
			e := min(m.flagEnd(fr), b)
			if l := len(nf); l == 0 || nf[l-1].id != m.flags[fr].id {
				nf = append(nf, flagRun{uint32(jj), m.flags[fr].id})
			}
			jj += e - i
			i = e
			if i == b {
				break
			}
		}
		j += b - a
	}
	prev := 0
	for _, i := range idx {
		if i < prev || i >= m.n {
			continue
		}
		keep(prev, i)
		prev = i + 1
	}
	keep(prev, m.n)
	m.n = j
	m.uids, m.flags = tight(nu), tight(nf)
}

// viewCursor reads a view at ascending (or nearby) indexes in O(1) per step; the
// view must not change while it is used.
type viewCursor struct {
	m      *msgView
	ur, fr int // the current runs, +1 (0: none yet)
}

func (m *msgView) cursor() viewCursor { return viewCursor{m: m} }

func (c *viewCursor) uid(i int) uint32 {
	m := c.m
	r := c.ur - 1
	switch {
	case r >= 0 && int(m.uids[r].start) <= i && i < m.uidEnd(r):
	case r >= 0 && r+1 < len(m.uids) && int(m.uids[r+1].start) <= i && i < m.uidEnd(r+1):
		r++
	default:
		r = m.uidRunOf(i)
	}
	c.ur = r + 1
	return m.uids[r].first + uint32(i) - m.uids[r].start
}

func (c *viewCursor) flags(i int) uint16 {
	m := c.m
	r := c.fr - 1
	switch {
	case r >= 0 && int(m.flags[r].start) <= i && i < m.flagEnd(r):
	case r >= 0 && r+1 < len(m.flags) && int(m.flags[r+1].start) <= i && i < m.flagEnd(r+1):
		r++
	default:
		r = m.flagRunOf(i)
	}
	c.fr = r + 1
	return m.flags[r].id
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

// internRaw interns a flag set as the store keeps it (space-separated), without
// splitting it when the set is known.
func (t *flagTable) internRaw(flags []byte) uint16 {
	if id, ok := t.idx[string(flags)]; ok {
		return id
	}
	if len(flags) == 0 {
		return t.intern(nil)
	}
	return t.intern(strings.Split(string(flags), " "))
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
func (v *selected) index(uid uint32) (int, bool) { return v.msgs.index(uid) }

func (v *selected) maxUID() uint32 { return v.msgs.maxUID() }

// uidsOf returns the UIDs at view indexes idx.
func (v *selected) uidsOf(idx []int) []uint32 {
	c := v.msgs.cursor()
	uids := make([]uint32, len(idx))
	for k, i := range idx {
		uids[k] = c.uid(i)
	}
	return uids
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
	n := v.msgs.len()
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
			lo := v.msgs.lowerBound(start)
			hi := n - 1
			if stop < ^uint32(0) {
				hi = v.msgs.lowerBound(stop+1) - 1
			}
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
	// The view is built from a stream of rows, without a slice of them: a SELECT of
	// a large mailbox leaves little garbage behind.
	v := &selected{readOnly: cmd.Name == "EXAMINE"}
	var changed []qresyncChange // for QRESYNC: messages changed since the client's MODSEQ
	firstUnseen := 0
	lastID, lastSeen := uint16(unknownFlags), false
	mb, err = s.srv.st.ScanSnapshot(ctx, mb.ID, func(uid uint32, modseq int64, flags []byte) error {
		id := v.tab.internRaw(flags)
		if id != lastID || id == unknownFlags {
			lastID, lastSeen = id, id != unknownFlags && hasIMAPFlag(v.tab.get(id), imap.FlagSeen)
			if id == unknownFlags {
				lastSeen = hasFlag(strings.Split(string(flags), " "), store.FlagSeen)
			}
		}
		if firstUnseen == 0 && !lastSeen {
			firstUnseen = v.msgs.len() + 1
		}
		if sa.QResync != nil && modseq > int64(sa.QResync.ModSeq) {
			changed = append(changed, qresyncChange{idx: v.msgs.len(), uid: uid, modseq: modseq, id: id})
		}
		v.msgs.push(uid, id)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return no(wire.CodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return err
	}
	v.msgs.compact()
	v.id, v.name, v.uidValidity, v.modseq = mb.ID, mb.Name, mb.UIDValidity, mb.HighestModSeq
	w := s.wr()
	s.writeFlags(v)
	w.Exists(uint32(v.msgs.len()))
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
		if err := s.qresyncSelect(ctx, v, q, changed); err != nil {
			return err
		}
	}
	s.sel, s.state = v, stateSelected
	if v.readOnly {
		return okCode(wire.CodeReadOnly, cmd.Name+" completed")
	}
	return okCode(wire.CodeReadWrite, cmd.Name+" completed")
}

// qresyncChange is a message changed after the MODSEQ a QRESYNC client knows.
type qresyncChange struct {
	idx    int
	uid    uint32
	modseq int64
	id     uint16
}

// qresyncSelect reports what changed since the client's last session (RFC 7162 §3.2.5).
func (s *session) qresyncSelect(ctx context.Context, v *selected, q *wire.QResyncArgs, changed []qresyncChange) error {
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
	for _, m := range changed {
		w.FetchStart(uint32(m.idx + 1))
		w.FetchUID(imap.UID(m.uid))
		w.FetchFlags(v.tab.get(m.id))
		w.FetchModSeq(uint64(m.modseq))
		w.FetchEnd()
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
		uids = s.sel.uidsOf(idx)
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
	idx = slices.Compact(idx)
	w := s.wr()
	if s.qresync {
		w.Vanished(vanished, false)
	} else {
		for k := len(idx) - 1; k >= 0; k-- {
			w.Expunge(uint32(idx[k] + 1))
		}
	}
	v.msgs.remove(idx)
}

// update reports what other sessions (and deliveries) changed in the selected
// mailbox since the view was last brought up to date. Unless force, it reads the
// store only after a poke.
func (s *session) update(ctx context.Context, force bool) error {
	return s.updateWith(ctx, force, updateAll)
}

// updateKind says what an update may report.
type updateKind int

const (
	updateAll updateKind = iota
	// updateNew reports new messages only (EXISTS, and FLAGS for new keywords): it
	// ends FETCH, STORE and SEARCH by sequence number, during which RFC 9051 §7.5.1
	// forbids EXPUNGE, and during which Delta Chat cannot take another message's
	// FETCH FLAGS. What it leaves is reported by the next full update.
	updateNew
	// updateNewExpunge adds expunges: UID FETCH, UID STORE and UID SEARCH may carry
	// them (§7.5.1), so a client polling with them sees its mailbox change.
	updateNewExpunge
)

func (s *session) updateWith(ctx context.Context, force bool, kind updateKind) error {
	v := s.sel
	if v == nil || s.sub == nil {
		return nil
	}
	if s.stale {
		// A limited update left something behind: read again (the poke is gone).
		force = true
		if kind == updateAll {
			s.stale = false
		}
	}
	if !force {
		select {
		case <-s.sub.C:
		default:
			return nil
		}
	}
	if kind != updateAll {
		s.stale = true
	}
	mb, changed, gone, err := s.srv.st.Changes(ctx, v.id, v.modseq)
	if errors.Is(err, store.ErrNotFound) {
		text := "The selected mailbox was deleted by another session"
		if t := s.stopText.Load(); t != nil {
			text = *t // the whole account went
		}
		s.wr().StatusResponse("*", wire.BYE, "", text)
		_ = s.flush()
		return errClose
	}
	if err != nil {
		return err
	}
	if kind != updateNew {
		s.reportExpunged(gone)
	}
	w := s.wr()
	last := v.maxUID()
	n0 := v.msgs.len()
	var flagChanged []flagChange
	for _, m := range changed {
		if m.UID > last {
			v.msgs.push(m.UID, v.tab.intern(m.Flags))
			continue
		}
		if kind != updateAll {
			continue
		}
		i, ok := v.index(m.UID)
		if !ok {
			continue
		}
		if id := v.tab.intern(m.Flags); id != v.msgs.flagsOf(i) || id == unknownFlags {
			flagChanged = append(flagChanged, flagChange{i, id})
		}
	}
	v.msgs.setFlags(slices.Clone(flagChanged))
	if v.tab.newKw {
		s.writeFlags(v)
	}
	c := v.msgs.cursor()
	for _, f := range flagChanged {
		u := c.uid(f.idx)
		w.FetchStart(uint32(f.idx + 1))
		w.FetchUID(imap.UID(u))
		w.FetchFlags(v.tab.get(f.id))
		if s.condstore {
			w.FetchModSeq(uint64(modseqOf(changed, u)))
		}
		w.FetchEnd()
	}
	if v.msgs.len() != n0 {
		w.Exists(uint32(v.msgs.len()))
	}
	// Flag changes a limited update skipped are still to tell: the mark stays.
	if kind == updateAll && mb.HighestModSeq > v.modseq {
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
