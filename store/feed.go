package store

import "sync"

// feed is the per-account change notification. It carries no data: a poked subscriber
// reads what changed from the database, which keeps the feed lossless without a queue.
type feed struct {
	mu   sync.Mutex
	subs map[int64]map[*Subscription]struct{}
}

// Subscription receives a poke on C after every commit that changed its account.
type Subscription struct {
	C       <-chan struct{}
	c       chan struct{}
	account int64
	f       *feed
}

func (f *feed) init() { f.subs = map[int64]map[*Subscription]struct{}{} }

func (f *feed) poke(account int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs[account] {
		select {
		case sub.c <- struct{}{}:
		default: // a poke is already pending; one is enough
		}
	}
}

// Subscribe starts receiving pokes for an account's changes. Close the subscription
// when done.
func (s *Store) Subscribe(accountID int64) *Subscription {
	c := make(chan struct{}, 1)
	sub := &Subscription{C: c, c: c, account: accountID, f: &s.feed}
	s.feed.mu.Lock()
	m := s.feed.subs[accountID]
	if m == nil {
		m = map[*Subscription]struct{}{}
		s.feed.subs[accountID] = m
	}
	m[sub] = struct{}{}
	s.feed.mu.Unlock()
	return sub
}

// Close stops the pokes.
func (sub *Subscription) Close() {
	sub.f.mu.Lock()
	defer sub.f.mu.Unlock()
	if m := sub.f.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(sub.f.subs, sub.account)
		}
	}
}
