package imapd

import (
	"bufio"
	"bytes"
	"context"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

const (
	// fetchChunk is how many message rows one store read returns: the read
	// connection is released before the rows are written to a slow client.
	fetchChunk = 500
	// bodyChunkBytes bounds the bodies held in memory at once.
	bodyChunkBytes = 8 << 20
)

func (s *session) cmdFetch(ctx context.Context, cmd *wire.Command) error {
	fa, err := cmd.Fetch()
	if err != nil {
		return err
	}
	if fa.Vanished && !s.qresync {
		return bad("VANISHED needs ENABLE QRESYNC")
	}
	idx, err := s.resolve(fa.Set)
	if err != nil {
		return err
	}
	o := &fa.Options
	if o.ModSeq {
		s.enableCondstore()
	}
	v := s.sel
	w := s.wr()
	if fa.Vanished {
		gone, err := s.srv.st.ExpungedSince(ctx, v.id, int64(o.ChangedSince))
		if err != nil {
			return err
		}
		set := fa.Set.(imap.UIDSet)
		var vanished imap.UIDSet
		for _, u := range gone {
			// "*" is the highest UID ever used here, which an expunged one may be.
			if uidSetContains(set, imap.UID(u), imap.UID(^uint32(0))) {
				vanished.AddNum(imap.UID(u))
			}
		}
		if len(vanished) > 0 {
			w.Vanished(vanished, true)
		}
	}
	markSeen := false
	for _, sec := range fa.Sections {
		if (sec.Body != nil && !sec.Body.Peek) || (sec.Binary != nil && !sec.Binary.Peek) {
			markSeen = !v.readOnly
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if markSeen {
		uids := v.uidsOf(idx)
		up, err := s.srv.st.StoreFlags(ctx, v.id, uids, store.FlagsAdd, []string{store.FlagSeen}, 0)
		if err != nil {
			return err
		}
		o.Flags = true
		if h := s.srv.opts.SeenHook; h != nil && len(up.Changed) > 0 {
			// The implicit \Seen counts like a STORE (COI's seen mode). What moved
			// is reported after this FETCH, as RFC 9051 §7.5.1 asks; the messages are
			// still answered below from the rows already read.
			defer func() {
				if _, herr := h.Seen(ctx, s.acc, v.name, v.id, up.Changed); herr != nil {
					s.log.Warn("imap: seen hook", "err", herr)
				}
			}()
		}
	}
	memOnly := !o.Envelope && o.BodyStructure == nil && !o.InternalDate && !o.RFC822Size && !o.ModSeq &&
		len(fa.Sections) == 0 && !fa.HasChangedSince && !markSeen
	if memOnly {
		// FLAGS and UID come from the view: what this client has been told, which is
		// also what a later update compares against.
		c := v.msgs.cursor()
		for _, i := range idx {
			w.FetchStart(uint32(i + 1))
			if o.UID {
				w.FetchUID(imap.UID(c.uid(i)))
			}
			if o.Flags {
				w.FetchFlags(v.tab.get(c.flags(i)))
			}
			w.FetchEnd()
		}
		return nil
	}
	cacheable := !o.ModSeq && len(fa.Sections) == 0 && !fa.HasChangedSince && !markSeen &&
		(o.BodyStructure == nil || o.BodyStructure.Extended)
	if cacheable {
		if done, err := s.fetchCached(ctx, fa, idx, cmd.UID); done || err != nil {
			return err
		}
	}
	// writeFetch collects the flag sets the client is told; the view takes them
	// after each chunk, in one pass.
	defer s.applyFlagPend()
	gone := false // some message of the view no longer exists
	c := v.msgs.cursor()
	uids := make([]uint32, 0, min(len(idx), fetchChunk))
	for start := 0; start < len(idx); start += fetchChunk {
		part := idx[start:min(start+fetchChunk, len(idx))]
		uids = uids[:0]
		for _, i := range part {
			uids = append(uids, c.uid(i))
		}
		msgs, err := s.srv.st.Messages(ctx, v.id, uids)
		if err != nil {
			return err
		}
		if len(msgs) < len(uids) {
			gone = true // expunged by another session, not yet told
		}
		if fa.HasChangedSince {
			k := 0
			for _, m := range msgs {
				if m.ModSeq > int64(o.ChangedSince) {
					msgs[k] = m
					k++
				}
			}
			msgs = msgs[:k]
		}
		for len(msgs) > 0 {
			n, bodies, err := s.loadBodies(ctx, fa, msgs)
			if err != nil {
				return err
			}
			for k := range msgs[:n] {
				var body []byte
				if bodies != nil {
					var ok bool
					if body, ok = bodies[msgs[k].UID]; !ok && needsBody(fa, &msgs[k]) {
						// Expunged between the two reads: its data is gone, and half
						// an answer (an empty header, an empty body) would be a lie.
						gone = true
						continue
					}
				}
				s.writeFetch(fa, &msgs[k], body)
			}
			msgs = msgs[n:]
			s.applyFlagPend()
			if err := w.Flush(); err != nil {
				return errClose
			}
		}
	}
	if gone && !cmd.UID {
		// RFC 9051 §7.1: the client still numbers them, so it learns why they are
		// missing; a UID FETCH treats them as UIDs that do not exist.
		return no(wire.CodeExpungeIssued, "Some of the requested messages no longer exist")
	}
	return nil
}

// fetchCached answers from the summary cache and the view, without reading rows;
// done is false when some message lacks a summary and the rows must be read.
func (s *session) fetchCached(ctx context.Context, fa *wire.FetchArgs, idx []int, uid bool) (done bool, err error) {
	v := s.sel
	o := &fa.Options
	uids := v.uidsOf(idx)
	ents, err := s.srv.cache.get(ctx, s.srv.st, s.cacheKey(), uids)
	if err != nil {
		return false, err
	}
	sums := make([]summary, len(ents))
	for k := range ents {
		if !ents[k].ok {
			continue
		}
		var ok bool
		if sums[k], ok = parseSummary(ents[k].sum); !ok && (o.Envelope || o.BodyStructure != nil) {
			return false, nil
		}
	}
	w := s.wr()
	c := v.msgs.cursor()
	gone := false
	for k, i := range idx {
		e := &ents[k]
		if !e.ok {
			gone = true // expunged by another session, not yet reported
			continue
		}
		w.FetchStart(uint32(i + 1))
		if o.UID {
			w.FetchUID(imap.UID(uids[k]))
		}
		if o.Flags {
			w.FetchFlags(v.tab.get(c.flags(i)))
		}
		if o.InternalDate {
			w.FetchInternalDate(time.Unix(e.date, 0))
		}
		if o.RFC822Size {
			w.FetchRFC822Size(e.size)
		}
		if o.Envelope {
			w.FetchRaw("ENVELOPE ", sums[k].envelope(s.utf8))
		}
		if o.BodyStructure != nil {
			w.FetchRaw("BODYSTRUCTURE ", sums[k].bodyStructure(s.utf8))
		}
		w.FetchEnd()
	}
	if gone && !uid {
		return true, no(wire.CodeExpungeIssued, "Some of the requested messages no longer exist")
	}
	return true, nil
}

// needsBody reports whether answering for m needs the message itself.
func needsBody(fa *wire.FetchArgs, m *store.Message) bool {
	if len(fa.Sections) > 0 {
		return true
	}
	o := &fa.Options
	if !o.Envelope && o.BodyStructure == nil {
		return false
	}
	if o.BodyStructure != nil && !o.BodyStructure.Extended {
		return true
	}
	_, ok := parseSummary(m.Summary)
	return !ok
}

// loadBodies reads the bodies the first n messages need, n chosen so that they stay
// within bodyChunkBytes (at least one message).
//
// When only top-level header sections are asked for (Delta Chat's prefetch of every
// new message), only the headers are read: a 30 MB attachment stays on disk.
func (s *session) loadBodies(ctx context.Context, fa *wire.FetchArgs, msgs []store.Message) (int, map[uint32][]byte, error) {
	headerOnly := headerSectionsOnly(fa)
	var uids []uint32
	var size int64
	limit := 0
	n := 0
	for n < len(msgs) {
		m := &msgs[n]
		if needsBody(fa, m) {
			need := m.Size
			if headerOnly {
				if sum, ok := parseSummary(m.Summary); ok {
					need = int64(sum.headerLen)
					limit = max(limit, sum.headerLen)
				} else {
					headerOnly = false
				}
			}
			if len(uids) > 0 && size+need > bodyChunkBytes {
				break
			}
			uids = append(uids, m.UID)
			size += need
		}
		n++
	}
	if len(uids) == 0 {
		return n, nil, nil
	}
	if !headerOnly {
		limit = 0
	}
	bs, err := s.srv.st.Bodies(ctx, s.sel.id, uids, limit)
	if err != nil {
		return 0, nil, err
	}
	out := make(map[uint32][]byte, len(bs))
	for _, b := range bs {
		out[b.UID] = b.Data
	}
	return n, out, nil
}

// headerSectionsOnly: every section is BODY[HEADER…] of the message itself, and
// nothing else needs the body.
func headerSectionsOnly(fa *wire.FetchArgs) bool {
	if bs := fa.Options.BodyStructure; bs != nil && !bs.Extended {
		return false
	}
	for _, sec := range fa.Sections {
		if sec.Body == nil || len(sec.Body.Part) > 0 || sec.Body.Specifier != imap.PartSpecifierHeader {
			return false
		}
	}
	return true
}

// applyFlagPend records in the view the flag sets writeFetch reported.
func (s *session) applyFlagPend() {
	if len(s.flagPend) > 0 && s.sel != nil {
		s.sel.msgs.setFlags(s.flagPend)
	}
	s.flagPend = s.flagPend[:0]
}

// writeFetch writes one FETCH response.
func (s *session) writeFetch(fa *wire.FetchArgs, m *store.Message, body []byte) {
	v := s.sel
	i, ok := v.index(m.UID)
	if !ok {
		return
	}
	o := &fa.Options
	var id uint16
	if o.Flags {
		// A keyword another session just set is announced in FLAGS before any FETCH
		// shows it (RFC 9051 §7.3.5: clients learn flags from FLAGS).
		if id = v.tab.intern(m.Flags); v.tab.newKw {
			s.writeFlags(v)
		}
	}
	w := s.wr()
	w.FetchStart(uint32(i + 1))
	if o.UID {
		w.FetchUID(imap.UID(m.UID))
	}
	if o.Flags {
		// The client now knows these flags; an update must not repeat them.
		s.flagPend = append(s.flagPend, flagChange{i, id})
		w.FetchFlags(v.tab.get(id))
	}
	if o.InternalDate {
		w.FetchInternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		w.FetchRFC822Size(m.Size)
	}
	sum, sumOK := parseSummary(m.Summary)
	if o.Envelope {
		if sumOK {
			w.FetchRaw("ENVELOPE ", sum.envelope(s.utf8))
		} else {
			hdr, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body[:headerLen(body)])))
			w.FetchEnvelope(envelope(hdr))
		}
	}
	if bs := o.BodyStructure; bs != nil {
		if bs.Extended && sumOK {
			w.FetchRaw("BODYSTRUCTURE ", sum.bodyStructure(s.utf8))
		} else {
			w.FetchBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(body)), bs.Extended)
		}
	}
	if o.ModSeq {
		w.FetchModSeq(uint64(m.ModSeq))
	}
	for k := range fa.Sections {
		sec := &fa.Sections[k]
		switch {
		case sec.Body != nil:
			w.FetchSection(sec.Name, sec.Body.Partial, partial(bodySection(body, sec.Body), sec.Body.Partial))
		case sec.Binary != nil:
			data := imapserver.ExtractBinarySection(bytes.NewReader(body), &imap.FetchItemBinarySection{Part: sec.Binary.Part})
			w.FetchBinary(sec.Name, sec.Binary.Partial, partial(data, sec.Binary.Partial))
		case sec.BinarySize != nil:
			w.FetchBinarySize(sec.Name, imapserver.ExtractBinarySectionSize(bytes.NewReader(body), sec.BinarySize))
		}
	}
	w.FetchEnd()
}

// bodySection extracts a BODY[…] section. The whole message, its header and its text
// are served as stored, byte for byte: signatures over them must stay valid.
func bodySection(body []byte, sec *imap.FetchItemBodySection) []byte {
	if len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			return body
		case imap.PartSpecifierHeader:
			return body[:headerLen(body)]
		case imap.PartSpecifierText:
			return body[headerLen(body):]
		}
	}
	whole := *sec
	whole.Partial = nil
	data := imapserver.ExtractBodySection(bytes.NewReader(body), &whole)
	if data == nil && len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierHeader {
		// A header that would not parse still has fields to show: none.
		return []byte("\r\n")
	}
	return data
}

// partial applies <offset.size>; an offset past the end gives an empty string.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil || b == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return []byte{}
	}
	end := min(p.Offset+p.Size, int64(len(b)))
	return b[p.Offset:end]
}

// uidSetContains tests membership with "*" standing for maxUID.
func uidSetContains(set imap.UIDSet, uid, maxUID imap.UID) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = maxUID
		}
		if stop == 0 {
			stop = maxUID
		}
		if start > stop {
			start, stop = stop, start
		}
		if uid >= start && uid <= stop {
			return true
		}
	}
	return false
}
