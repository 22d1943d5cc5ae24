package store

import "sync"

// Removed names the accounts and mailboxes one committed batch deleted. Their ids
// are never given to another row (schema migration 2), so a cache keyed by them can
// never describe a new row with an old one's data; it hears of the deletion only to
// free what it holds.
type Removed struct {
	Accounts  []int64
	Mailboxes []int64 // including every mailbox of the accounts above
}

func (r *Removed) empty() bool { return len(r.Accounts) == 0 && len(r.Mailboxes) == 0 }

// removeHooks are the functions OnRemoved registered.
type removeHooks struct {
	mu  sync.Mutex
	fns []func(Removed)
}

// OnRemoved registers fn to be called after every durable commit that deleted
// accounts or mailboxes, before the change feed wakes the sessions of those
// accounts. fn runs on the store's syncer goroutine: it must be quick and must not
// write to the store.
func (s *Store) OnRemoved(fn func(Removed)) {
	s.removeHooks.mu.Lock()
	s.removeHooks.fns = append(s.removeHooks.fns, fn)
	s.removeHooks.mu.Unlock()
}

func (h *removeHooks) call(r Removed) {
	h.mu.Lock()
	fns := h.fns
	h.mu.Unlock()
	for _, fn := range fns {
		fn(r)
	}
}

// removedMailbox records that the transaction deleted a mailbox.
func (t *Tx) removedMailbox(id int64) { t.removed.Mailboxes = append(t.removed.Mailboxes, id) }

// removedAccount records that the transaction deleted an account and its mailboxes.
func (t *Tx) removedAccount(id int64, mailboxes []int64) {
	t.removed.Accounts = append(t.removed.Accounts, id)
	t.removed.Mailboxes = append(t.removed.Mailboxes, mailboxes...)
}
