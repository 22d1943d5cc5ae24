package imapd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // SEARCH decodes text in any charset
	"github.com/emersion/go-message/textproto"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

// searchNeeds says what evaluating some criteria reads beyond the session's view.
type searchNeeds struct {
	row    bool // dates, sizes, MODSEQ or summary fields: message rows
	body   bool // BODY, TEXT or a header the summary lacks: the messages themselves
	modseq bool // the MODSEQ criterion (the reply then carries the highest MODSEQ)
}

// prepareSearch lower-cases the criteria's strings, once, and finds what they need.
func prepareSearch(c *imap.SearchCriteria, n *searchNeeds) {
	if !c.Since.IsZero() || !c.Before.IsZero() || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || c.Larger > 0 || c.Smaller > 0 {
		n.row = true
	}
	for i := range c.Header {
		h := &c.Header[i]
		h.Key = strings.ToLower(h.Key)
		h.Value = strings.ToLower(h.Value)
		n.row = true
		if _, ok := summaryField(h.Key); !ok || h.Value == "" {
			n.body = true
		}
	}
	for i := range c.Body {
		c.Body[i] = strings.ToLower(c.Body[i])
		n.row, n.body = true, true
	}
	for i := range c.Text {
		c.Text[i] = strings.ToLower(c.Text[i])
		n.row, n.body = true, true
	}
	if c.ModSeq != nil {
		n.row, n.modseq = true, true
	}
	for i := range c.Not {
		prepareSearch(&c.Not[i], n)
	}
	for i := range c.Or {
		prepareSearch(&c.Or[i][0], n)
		prepareSearch(&c.Or[i][1], n)
	}
}

// candidate is one message while criteria are evaluated.
type candidate struct {
	idx    int
	uid    uint32
	flags  []imap.Flag
	date   time.Time
	size   int64
	modseq int64
	sum    summary
	sumOK  bool
	body   []byte // nil unless loaded
}

func (s *session) cmdSearch(ctx context.Context, cmd *wire.Command) error {
	sa, err := cmd.Search()
	if err != nil {
		return err
	}
	switch sa.Charset {
	case "", "UTF-8", "US-ASCII":
	default:
		return no(wire.CodeBadCharset("UTF-8", "US-ASCII"), "Unsupported charset %s", clip(sa.Charset))
	}
	c := &sa.Criteria
	var needs searchNeeds
	prepareSearch(c, &needs)
	if needs.modseq {
		s.enableCondstore()
	}
	idx, mods, err := s.search(ctx, c, needs)
	if err != nil {
		return err
	}
	v := s.sel
	r := sa.Return
	if r.ReturnSave {
		saved := make([]uint32, 0, len(idx))
		switch {
		case (r.ReturnMin || r.ReturnMax) && !r.ReturnAll && !r.ReturnCount && len(idx) > 0:
			// RFC 5182 §2.4: SAVE with only MIN/MAX saves just those.
			if r.ReturnMin {
				saved = append(saved, v.msgs.uid(idx[0]))
			}
			if r.ReturnMax && (!r.ReturnMin || len(idx) > 1) {
				saved = append(saved, v.msgs.uid(idx[len(idx)-1]))
			}
		default:
			saved = v.uidsOf(idx)
		}
		s.saved = saved
	}
	var nums []uint32
	if cmd.UID {
		nums = v.uidsOf(idx)
	} else {
		nums = make([]uint32, len(idx))
		for k, i := range idx {
			nums[k] = uint32(i + 1)
		}
	}
	var highest int64
	for _, m := range mods {
		highest = max(highest, m)
	}
	w := s.wr()
	if !sa.ESearch && !s.rev2 {
		w.Search(nums, uint64(highest))
		return nil
	}
	if !sa.ESearch {
		r = imap.SearchOptions{ReturnAll: true}
	}
	// RFC 7162 §3.1.5: the highest MODSEQ of the messages returned, which with only
	// MIN and/or MAX asked for are just those.
	if (r.ReturnMin || r.ReturnMax) && !r.ReturnAll && !r.ReturnCount && len(idx) > 0 {
		highest = 0
		if r.ReturnMin {
			highest = mods[idx[0]]
		}
		if r.ReturnMax {
			highest = max(highest, mods[idx[len(idx)-1]])
		}
	}
	if r.ReturnSave && !r.ReturnMin && !r.ReturnMax && !r.ReturnAll && !r.ReturnCount {
		return nil
	}
	data := &imap.SearchData{Count: uint32(len(nums)), ModSeq: uint64(highest)}
	if len(nums) > 0 {
		data.Min, data.Max = nums[0], nums[len(nums)-1]
	}
	if cmd.UID {
		var set imap.UIDSet
		for _, n := range nums {
			set.AddNum(imap.UID(n))
		}
		data.All = set
	} else {
		var set imap.SeqSet
		set.AddNum(nums...)
		data.All = set
	}
	w.ESearch(cmd.Tag, cmd.UID, r, data)
	return nil
}

// search returns the view indexes of matching messages, ascending, and, when the
// criteria asked about MODSEQ, each one's MODSEQ (by view index).
func (s *session) search(ctx context.Context, c *imap.SearchCriteria, needs searchNeeds) ([]int, map[int]int64, error) {
	v := s.sel
	m := &matcher{n: uint32(v.msgs.len()), maxUID: v.maxUID(), saved: s.saved}
	var out []int
	var mods map[int]int64
	if needs.modseq {
		mods = map[int]int64{}
	}
	hit := func(x *candidate) {
		if m.match(c, x) {
			out = append(out, x.idx)
			if needs.modseq {
				mods[x.idx] = x.modseq
			}
		}
	}
	if !needs.row {
		c := v.msgs.cursor()
		for i := range v.msgs.len() {
			hit(&candidate{idx: i, uid: c.uid(i), flags: v.tab.get(c.flags(i))})
		}
		return out, mods, nil
	}
	// Pass 1 decides every message it can from summaries, dates and sizes (from the
	// cache, or from rows when MODSEQ is asked about, which changes); messages that
	// need their body are kept for pass 2.
	type deferred struct {
		x   candidate
		sum []byte
	}
	var later []deferred
	consider := func(x *candidate, sum []byte, stable bool) {
		x.sum, x.sumOK = parseSummary(sum)
		if needs.body || !x.sumOK {
			if !stable {
				sum = bytes.Clone(sum)
			}
			later = append(later, deferred{x: *x, sum: sum})
			return
		}
		hit(x)
	}
	if !needs.modseq {
		uids := v.msgs.appendUIDs(nil, 0, v.msgs.len())
		ents, err := s.srv.cache.get(ctx, s.srv.st, s.cacheKey(), uids)
		if err != nil {
			return nil, nil, err
		}
		var x candidate
		c := v.msgs.cursor()
		for i := range ents {
			e := &ents[i]
			if !e.ok {
				continue
			}
			x = candidate{idx: i, uid: uids[i], flags: v.tab.get(c.flags(i)), date: time.Unix(e.date, 0), size: e.size}
			consider(&x, e.sum, true)
		}
	} else {
		var x candidate
		c := v.msgs.cursor()
		err := s.srv.st.ScanMessages(ctx, v.id, nil, func(row *store.Message) error {
			i, ok := v.index(row.UID)
			if !ok {
				return nil
			}
			x = candidate{idx: i, uid: row.UID, flags: v.tab.get(c.flags(i)), date: row.InternalDate, size: row.Size, modseq: row.ModSeq}
			consider(&x, row.Summary, false)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(later) > 0 {
		// Pass 2 streams the bodies: evaluation is CPU only, so holding a read
		// connection meanwhile is fine, and no body outlives its turn.
		uids := make([]uint32, len(later))
		for k := range later {
			uids[k] = later[k].x.uid
		}
		k := 0
		err := s.srv.st.ScanBodies(ctx, v.id, uids, func(uid uint32, body []byte) error {
			for k < len(later) && later[k].x.uid < uid {
				k++
			}
			if k == len(later) || later[k].x.uid != uid {
				return nil
			}
			d := &later[k]
			d.x.body = body
			d.x.sum, d.x.sumOK = parseSummary(d.sum)
			if !d.x.sumOK {
				d.x.sum, d.x.sumOK = parseSummary(Summarize(body))
			}
			hit(&d.x)
			d.x.body = nil
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	sort.Ints(out)
	return out, mods, nil
}

// matcher evaluates criteria against candidates of one view.
type matcher struct {
	n      uint32 // messages in the view: "*" of sequence sets
	maxUID uint32
	saved  []uint32
}

func (m *matcher) match(c *imap.SearchCriteria, x *candidate) bool {
	seq := uint32(x.idx + 1)
	for _, set := range c.SeqNum {
		if !seqSetContains(set, seq, m.n) {
			return false
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			i := sort.Search(len(m.saved), func(i int) bool { return m.saved[i] >= x.uid })
			if i == len(m.saved) || m.saved[i] != x.uid {
				return false
			}
		} else if !uidSetContains(set, imap.UID(x.uid), imap.UID(m.maxUID)) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasIMAPFlag(x.flags, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasIMAPFlag(x.flags, f) {
			return false
		}
	}
	if c.Larger > 0 && x.size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && x.size >= c.Smaller {
		return false
	}
	if c.ModSeq != nil && x.modseq < int64(c.ModSeq.ModSeq) {
		return false
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		if !dayIn(dayOf(x.date.UTC()), c.Since, c.Before) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		day := dayOf(x.date.UTC())
		if x.sumOK && x.sum.hasDate {
			day = x.sum.sentDay
		}
		if !dayIn(day, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, h := range c.Header {
		if !headerMatch(x, h.Key, h.Value) {
			return false
		}
	}
	for _, b := range c.Body {
		if !bodyContains(x, b) {
			return false
		}
	}
	for _, t := range c.Text {
		if !textContains(x, t) {
			return false
		}
	}
	for i := range c.Not {
		if m.match(&c.Not[i], x) {
			return false
		}
	}
	for i := range c.Or {
		if !m.match(&c.Or[i][0], x) && !m.match(&c.Or[i][1], x) {
			return false
		}
	}
	return true
}

func dayIn(day int64, since, before time.Time) bool {
	if !since.IsZero() && day < dayOf(since) {
		return false
	}
	if !before.IsZero() && day >= dayOf(before) {
		return false
	}
	return true
}

func seqSetContains(set imap.SeqSet, seq, n uint32) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = n
		}
		if stop == 0 {
			stop = n
		}
		if start > stop {
			start, stop = stop, start
		}
		if seq >= start && seq <= stop {
			return true
		}
	}
	return false
}

func hasIMAPFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f || strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

func (x *candidate) headerBytes() []byte {
	if x.body == nil {
		return nil
	}
	if x.sumOK && x.sum.headerLen <= len(x.body) {
		return x.body[:x.sum.headerLen]
	}
	return x.body[:headerLen(x.body)]
}

// headerMatch: the summary answers for the fields it keeps; other fields, and the
// presence test (empty value), read the header itself, decoding encoded words.
func headerMatch(x *candidate, key, value string) bool {
	if f, ok := summaryField(key); ok && value != "" && x.sumOK {
		return bytes.Contains(x.sum.field(f), []byte(value))
	}
	hb := x.headerBytes()
	if hb == nil {
		return false
	}
	hdr, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hb)))
	dec := mime.WordDecoder{CharsetReader: gomessage.CharsetReader}
	for _, raw := range hdr.Values(key) {
		if value == "" {
			return true
		}
		text, err := dec.DecodeHeader(raw)
		if err != nil {
			text = raw
		}
		if strings.Contains(strings.ToLower(text), value) {
			return true
		}
	}
	return false
}

func textContains(x *candidate, needle string) bool {
	if x.sumOK && bytes.Contains(x.sum.search, []byte(needle)) {
		return true
	}
	if containsFold(x.headerBytes(), needle) {
		return true
	}
	return bodyContains(x, needle)
}

// bodyContains searches the message text: raw bytes when nothing needs decoding
// (the common case, and fast), else each text part decoded to UTF-8.
func bodyContains(x *candidate, needle string) bool {
	if x.body == nil {
		return false
	}
	text := x.body[len(x.headerBytes()):]
	if x.sumOK && x.sum.flags&sumNeedsDecoding == 0 {
		return containsFold(text, needle)
	}
	// go-message returns the entity along with an unknown-charset error; the
	// entity is still readable then.
	e, _ := gomessage.Read(bytes.NewReader(x.body))
	if e == nil {
		return containsFold(text, needle)
	}
	return entityContains(e, needle, 0)
}

func entityContains(e *gomessage.Entity, needle string, depth int) bool {
	if depth > 20 {
		return false
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err != nil {
				return false
			}
			if entityContains(p, needle, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	return containsFold(b, needle)
}

// containsFold reports whether hay contains needle (already lower case), ignoring
// case. ASCII needles are matched without copying hay.
func containsFold(hay []byte, needle string) bool {
	if needle == "" {
		return true
	}
	if len(hay) < len(needle) {
		return false
	}
	for i := 0; i < len(needle); i++ {
		if needle[i] >= utf8.RuneSelf {
			return bytes.Contains(bytes.ToLower(hay), []byte(needle))
		}
	}
	lo := needle[0]
	up := lo
	if lo >= 'a' && lo <= 'z' {
		up = lo - 'a' + 'A'
	}
	last := len(hay) - len(needle)
	window := hay[:last+1] // where a match may start
	nextLo, nextUp := -1, -1
	for i := 0; i <= last; {
		if nextLo < i {
			nextLo = indexFrom(window, lo, i)
		}
		if nextUp < i {
			nextUp = nextLo
			if up != lo {
				nextUp = indexFrom(window, up, i)
			}
		}
		j := min(nextLo, nextUp)
		if j > last {
			return false
		}
		if equalFoldASCII(hay[j:j+len(needle)], needle) {
			return true
		}
		i = j + 1
	}
	return false
}

// indexFrom returns the index of c in b at or after from, or len(b) when there is
// none, so that a miss is remembered rather than searched for again.
func indexFrom(b []byte, c byte, from int) int {
	k := bytes.IndexByte(b[from:], c)
	if k < 0 {
		return len(b)
	}
	return from + k
}

func equalFoldASCII(b []byte, lower string) bool {
	for i := 0; i < len(lower); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
