package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBatchSizes(t *testing.T) {
	var commits, writes atomic.Int64
	s, err := Open(context.Background(), t.TempDir(), Options{Observe: func(n int, d time.Duration) { commits.Add(1); writes.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := setup(t, s, "alice@example.org")[0]
	body := make([]byte, 4096)
	start := time.Now()
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= 3000 {
				s.Deliver(context.Background(), &Delivery{Body: body, Targets: []Target{{AccountID: a.ID}}})
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	t.Logf("%d writes in %d commits (avg %.1f), %.0f msg/s", writes.Load(), commits.Load(), float64(writes.Load())/float64(commits.Load()), 3000/el.Seconds())
}
