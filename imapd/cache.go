package imapd

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/coibox/coibox/store"
)

// What a message's row holds besides flags and MODSEQ never changes: its summary,
// internal date and size are fixed at delivery, and a UID names one message for the
// life of a mailbox. sumCache keeps them for recently used mailboxes, so FETCH
// ENVELOPE and header SEARCH over a large mailbox read no rows at all once warm
// (reading 10,000 rows costs tens of milliseconds; the cache, one).
//
// The cache is shared by every session of every account, so its key must name one
// mailbox for the life of the database: boxKey is the mailbox's row id, which the
// store never reuses (schema migration 2), together with its account and
// UIDVALIDITY, so that even a reused id would miss rather than answer with another
// mailbox's messages. When the store deletes a mailbox or an account, drop frees
// their entries (Server wires it to store.OnRemoved).

// boxKey names one mailbox incarnation.
type boxKey struct {
	account     int64
	mailbox     int64
	uidValidity uint32
}

// sumEntry is one message's immutable data.
type sumEntry struct {
	date int64 // unix seconds
	size int64
	sum  []byte // nil: the message had no summary (or is gone)
	ok   bool   // the message existed when loaded
}

type boxCache struct {
	mu    sync.Mutex // held while reading or extending; loads happen under it
	uids  []uint32   // ascending
	ents  []sumEntry
	bytes atomic.Int64
	used  uint64 // LRU clock of the last use; under sumCache.mu
}

// sumCache is bounded by the bytes of the summaries it holds; whole mailboxes are
// evicted, least recently used first.
type sumCache struct {
	mu    sync.Mutex
	boxes map[boxKey]*boxCache
	bytes int64
	max   int64
	clock uint64
}

func newSumCache(max int64) *sumCache {
	return &sumCache{boxes: map[boxKey]*boxCache{}, max: max}
}

const entryOverhead = 48 // bytes per entry besides the summary, for accounting

// get returns the entries of uids (ascending), in the same order, reading the
// messages the cache lacks from the store.
func (c *sumCache) get(ctx context.Context, st *store.Store, key boxKey, uids []uint32) ([]sumEntry, error) {
	c.mu.Lock()
	b := c.boxes[key]
	if b == nil {
		b = &boxCache{}
		c.boxes[key] = b
	}
	c.clock++
	b.used = c.clock
	c.mu.Unlock()

	b.mu.Lock()
	out := make([]sumEntry, len(uids))
	var missing []uint32
	j := 0
	for i, u := range uids {
		for j < len(b.uids) && b.uids[j] < u {
			j++
		}
		if j < len(b.uids) && b.uids[j] == u {
			out[i] = b.ents[j]
		} else {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		b.mu.Unlock()
		return out, nil
	}
	// Scanning the whole mailbox is cheaper than a long list of single UIDs.
	var scan []uint32
	if len(missing) < len(uids)/2 {
		scan = missing
	}
	loaded := map[uint32]sumEntry{}
	err := st.ScanMessages(ctx, key.mailbox, scan, func(m *store.Message) error {
		e := sumEntry{date: m.InternalDate.Unix(), size: m.Size, ok: true}
		if len(m.Summary) > 0 {
			e.sum = append([]byte(nil), m.Summary...)
		}
		loaded[m.UID] = e
		return nil
	})
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	delta := b.merge(loaded, uids)
	for i, u := range uids {
		if !out[i].ok {
			out[i] = loaded[u]
		}
	}
	b.mu.Unlock()
	c.account(key, b, delta)
	return out, nil
}

// merge adds loaded entries. When the cache holds many UIDs that are no longer
// wanted (expunged), it keeps only the wanted ones. It returns the change in bytes.
func (b *boxCache) merge(loaded map[uint32]sumEntry, wanted []uint32) int64 {
	before := b.bytes.Load()
	var total int64
	add := make([]uint32, 0, len(loaded))
	for u := range loaded {
		add = append(add, u)
	}
	sort.Slice(add, func(i, j int) bool { return add[i] < add[j] })
	uids := make([]uint32, 0, len(b.uids)+len(add))
	ents := make([]sumEntry, 0, len(b.uids)+len(add))
	prune := len(b.uids) > 2*len(wanted)+100
	keep := func(u uint32) bool {
		if !prune {
			return true
		}
		i := sort.Search(len(wanted), func(i int) bool { return wanted[i] >= u })
		return i < len(wanted) && wanted[i] == u
	}
	i, j := 0, 0
	for i < len(b.uids) || j < len(add) {
		var u uint32
		var e sumEntry
		switch {
		case j == len(add) || (i < len(b.uids) && b.uids[i] < add[j]):
			u, e = b.uids[i], b.ents[i]
			i++
		case i == len(b.uids) || add[j] < b.uids[i]:
			u, e = add[j], loaded[add[j]]
			j++
		default: // both: the fresh copy wins
			u, e = add[j], loaded[add[j]]
			i++
			j++
		}
		if !keep(u) {
			continue
		}
		uids = append(uids, u)
		ents = append(ents, e)
		total += int64(len(e.sum)) + entryOverhead
	}
	b.uids, b.ents = uids, ents
	b.bytes.Store(total)
	return total - before
}

// account records a box's growth and evicts least recently used boxes over the bound.
func (c *sumCache) account(id boxKey, b *boxCache, delta int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.boxes[id] != b {
		return // evicted meanwhile
	}
	c.bytes += delta
	for c.bytes > c.max && len(c.boxes) > 1 {
		var victim boxKey
		var vb *boxCache
		for k, x := range c.boxes {
			if x != b && (vb == nil || x.used < vb.used) {
				victim, vb = k, x
			}
		}
		if vb == nil {
			break
		}
		delete(c.boxes, victim)
		c.bytes -= vb.bytes.Load()
	}
	if c.bytes > c.max {
		// One mailbox larger than the whole bound: do not keep it.
		delete(c.boxes, id)
		c.bytes -= b.bytes.Load()
	}
}

// drop forgets the mailboxes the store deleted, and every mailbox of the accounts it
// deleted. A get that was reading one of them meanwhile finds its box gone in
// account and keeps nothing.
func (c *sumCache) drop(r store.Removed) {
	if len(r.Accounts) == 0 && len(r.Mailboxes) == 0 {
		return
	}
	accounts := make(map[int64]bool, len(r.Accounts))
	for _, id := range r.Accounts {
		accounts[id] = true
	}
	boxes := make(map[int64]bool, len(r.Mailboxes))
	for _, id := range r.Mailboxes {
		boxes[id] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, b := range c.boxes {
		if accounts[k.account] || boxes[k.mailbox] {
			delete(c.boxes, k)
			c.bytes -= b.bytes.Load()
		}
	}
}
