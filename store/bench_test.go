package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// benchDeliver delivers 4 KB messages from `writers` goroutines; every Deliver returns
// only after its batch is durable, so ns/op is the durable cost per message.
func benchDeliver(b *testing.B, writers int, size int) {
	s, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.AddDomain(ctx, "example.org", false); err != nil {
		b.Fatal(err)
	}
	a, err := s.AddAccount(ctx, "alice@example.org", "pw")
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var n atomic.Int64
	b.SetBytes(int64(size))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= int64(b.N) {
				if _, _, err := s.Deliver(ctx, &Delivery{Body: body, Targets: []Target{{AccountID: a.ID}}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{4 << 10, 100 << 10} {
		for _, w := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%dKB/c%d", size>>10, w), func(b *testing.B) { benchDeliver(b, w, size) })
		}
	}
}

// BenchmarkBodyPlacement compares the two places a body can live, both durable before
// the acknowledgement: a blob inside the group-committed transaction, or a file beside
// the database, fsynced with its directory before its row commits.
func BenchmarkBodyPlacement(b *testing.B) {
	const writers = 16
	body := make([]byte, 4<<10)
	b.Run("blob", func(b *testing.B) { benchDeliver(b, writers, len(body)) })
	b.Run("file", func(b *testing.B) {
		s, err := Open(context.Background(), b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		dir := filepath.Join(b.TempDir(), "bodies")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var n atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := n.Add(1)
					if i > int64(b.N) {
						return
					}
					name := filepath.Join(dir, fmt.Sprint(i))
					f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
					if err != nil {
						b.Error(err)
						return
					}
					_, werr := f.Write(body)
					serr := f.Sync()
					cerr := f.Close()
					if werr != nil || serr != nil || cerr != nil {
						b.Error(werr, serr, cerr)
						return
					}
					d, err := os.Open(dir)
					if err != nil {
						b.Error(err)
						return
					}
					_ = d.Sync()
					d.Close()
					// The row that names the file, group-committed like any write.
					if err := s.write(ctx, func(t *Tx) error {
						_, err := t.exec("INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES (0, 0, ?, ?)", name, []byte{1})
						return err
					}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}
