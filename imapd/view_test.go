package imapd

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// naiveView is the plain model msgView must agree with.
type naiveView struct {
	uids  []uint32
	flags []uint16
}

func checkView(t *testing.T, step string, m *msgView, want *naiveView) {
	t.Helper()
	if m.len() != len(want.uids) {
		t.Fatalf("%s: len %d, want %d", step, m.len(), len(want.uids))
	}
	c := m.cursor()
	for i, u := range want.uids {
		if got := m.uid(i); got != u {
			t.Fatalf("%s: uid(%d) = %d, want %d", step, i, got, u)
		}
		if got := c.uid(i); got != u {
			t.Fatalf("%s: cursor uid(%d) = %d, want %d", step, i, got, u)
		}
		if got := m.flagsOf(i); got != want.flags[i] {
			t.Fatalf("%s: flagsOf(%d) = %d, want %d", step, i, got, want.flags[i])
		}
		if got := c.flags(i); got != want.flags[i] {
			t.Fatalf("%s: cursor flags(%d) = %d, want %d", step, i, got, want.flags[i])
		}
		if j, ok := m.index(u); !ok || j != i {
			t.Fatalf("%s: index(%d) = %d, %v; want %d", step, u, j, ok, i)
		}
	}
	if got := m.appendUIDs(nil, 0, m.len()); !slices.Equal(got, want.uids) && len(want.uids) > 0 {
		t.Fatalf("%s: appendUIDs = %v, want %v", step, got, want.uids)
	}
	var maxUID uint32
	if len(want.uids) > 0 {
		maxUID = want.uids[len(want.uids)-1]
	}
	if m.maxUID() != maxUID {
		t.Fatalf("%s: maxUID %d, want %d", step, m.maxUID(), maxUID)
	}
	for u := uint32(0); u <= maxUID+2; u++ {
		lb, _ := slices.BinarySearch(want.uids, u)
		if got := m.lowerBound(u); got != lb {
			t.Fatalf("%s: lowerBound(%d) = %d, want %d", step, u, got, lb)
		}
		_, ok := m.index(u)
		if _, want := slices.BinarySearch(want.uids, u); ok != want {
			t.Fatalf("%s: index(%d) found %v, want %v", step, u, ok, want)
		}
	}
	for k := 1; k < len(m.flags); k++ {
		if m.flags[k].id == m.flags[k-1].id || m.flags[k].start <= m.flags[k-1].start {
			t.Fatalf("%s: flag runs %d and %d not canonical: %v", step, k-1, k, m.flags)
		}
	}
	for k := 1; k < len(m.uids); k++ {
		p := m.uids[k-1]
		if m.uids[k].start <= p.start || m.uids[k].first == p.first+m.uids[k].start-p.start {
			t.Fatalf("%s: uid runs %d and %d not canonical: %v", step, k-1, k, m.uids)
		}
	}
}

// TestMsgView checks the run-length view against a plain model through random
// appends, flag changes and expunges, dense and sparse.
func TestMsgView(t *testing.T) {
	for seed := range 40 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		var m msgView
		var want naiveView
		nflags := 1 + r.IntN(4)
		gap := r.IntN(4) // 0: consecutive UIDs mostly
		uid := uint32(0)
		push := func(k int) {
			for range k {
				uid += 1 + uint32(r.IntN(gap+1))*uint32(r.IntN(2))
				id := uint16(r.IntN(nflags))
				if r.IntN(3) > 0 && len(want.flags) > 0 {
					id = want.flags[len(want.flags)-1]
				}
				m.push(uid, id)
				want.uids = append(want.uids, uid)
				want.flags = append(want.flags, id)
			}
		}
		push(r.IntN(200))
		m.compact()
		checkView(t, "build", &m, &want)
		for step := range 30 {
			switch r.IntN(3) {
			case 0:
				push(r.IntN(20))
			case 1:
				var ch []flagChange
				for range r.IntN(40) {
					if len(want.uids) == 0 {
						break
					}
					ch = append(ch, flagChange{r.IntN(len(want.uids)), uint16(r.IntN(nflags + 1))})
				}
				// First wins for a repeated index, whatever the order.
				done := map[int]bool{}
				for _, c := range ch {
					if !done[c.idx] {
						want.flags[c.idx] = c.id
						done[c.idx] = true
					}
				}
				if r.IntN(2) == 0 {
					slices.SortStableFunc(ch, func(a, b flagChange) int { return a.idx - b.idx })
				}
				m.setFlags(ch)
			case 2:
				var idx []int
				for i := range want.uids {
					if r.IntN(5) == 0 {
						idx = append(idx, i)
					}
				}
				m.remove(idx)
				for k := len(idx) - 1; k >= 0; k-- {
					want.uids = slices.Delete(want.uids, idx[k], idx[k]+1)
					want.flags = slices.Delete(want.flags, idx[k], idx[k]+1)
				}
			}
			checkView(t, "step "+string(rune('a'+step%26)), &m, &want)
		}
	}
}

// TestMsgViewWorstCase runs the common operations on a view with a run per message
// (sparse UIDs, alternating flags): they must stay linear.
func TestMsgViewWorstCase(t *testing.T) {
	const n = 100000
	var m msgView
	for i := range n {
		m.push(uint32(2*i+1), uint16(i%2))
	}
	ch := make([]flagChange, 0, n)
	for i := n - 1; i >= 0; i-- { // descending: the worst order for an insert per change
		ch = append(ch, flagChange{i, uint16(2 + i%3)})
	}
	m.setFlags(ch)
	var idx []int
	for i := 0; i < n; i += 3 {
		idx = append(idx, i)
	}
	m.remove(idx)
	if m.len() != n-len(idx) {
		t.Fatalf("len %d", m.len())
	}
	c := m.cursor()
	for i := range m.len() {
		if u := c.uid(i); u%2 != 1 {
			t.Fatalf("uid %d", u)
		}
	}
}

// BenchmarkViewBytes10k builds the view of a 10,000-message mailbox shaped like a
// real one (a few expunged gaps, mostly \Seen, some flagged or answered in runs) and
// reports its heap bytes per message; the target for an idle session is well under 1.
func BenchmarkViewBytes10k(b *testing.B) {
	const n = 10000
	tab := flagTable{}
	seen := tab.intern([]string{`\Seen`})
	unseen := tab.intern(nil)
	flagged := tab.intern([]string{`\Flagged`, `\Seen`})
	answered := tab.intern([]string{`\Answered`, `\Seen`})
	build := func() *selected {
		v := &selected{}
		uid := uint32(0)
		for i := range n {
			uid++
			if i%500 == 0 {
				uid += 3 // expunged
			}
			id := seen
			switch {
			case i >= n-40:
				id = unseen
			case i%997 < 3:
				id = flagged
			case i%331 == 0:
				id = answered
			}
			v.msgs.push(uid, id)
		}
		v.msgs.compact()
		return v
	}
	const views = 100
	keep := make([]*selected, views)
	for b.Loop() {
		clear(keep)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for k := range keep {
			keep[k] = build()
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/views/n, "bytes/msg")
	}
	runtime.KeepAlive(keep)
}
