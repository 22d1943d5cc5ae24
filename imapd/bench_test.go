package imapd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/store"
)

// benchBody is a 4 KB message; every 100th has "needle" in its subject and every
// 50th in its text.
func benchBody(i int) []byte {
	subject := fmt.Sprintf("Message %d about topic %d", i, i%97)
	if i%100 == 0 {
		subject += " needle"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Message-ID: <bench%d@example.org>\r\nDate: Tue, 01 Sep 2026 10:00:00 +0200\r\nFrom: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, subject)
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
	for b.Len() < 4000 {
		if b.Len() > 2000 && i%50 == 0 && !bytes.Contains(b.Bytes(), []byte("haystack")) {
			b.WriteString("the haystack hides a Pin here\r\n")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// benchEnv returns a server whose INBOX holds n 4 KB messages, delivered in parallel
// so they share group commits.
func benchEnv(b *testing.B, n int) *testEnv {
	b.Helper()
	e := newEnv(b, func(o *Options) {
		o.Limits.MaxConnsPerIP = 5000
		o.Limits.MaxConnsPerAccount = 5000
	})
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, _, err := e.st.Deliver(context.Background(), &store.Delivery{Body: benchBody(i), Targets: []store.Target{{AccountID: e.acc.ID}}}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 1; i <= n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return e
}

// rawClient speaks IMAP over a plain connection and reads responses without parsing
// them, so benchmarks measure the server.
type rawClient struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func (e *testEnv) raw(tb testing.TB) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	if _, err := rc.r.ReadSlice('\n'); err != nil {
		tb.Fatal(err)
	}
	rc.do(tb, "LOGIN alice@example.org "+testPassword)
	return rc
}

// do sends a command and reads to its tagged response, returning the number of
// untagged lines (literal lines included).
func (rc *rawClient) do(tb testing.TB, cmd string) int {
	rc.tag++
	tag := fmt.Sprintf("b%d ", rc.tag)
	if _, err := fmt.Fprintf(rc.c, "%s%s\r\n", tag, cmd); err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			tb.Fatal(err)
		}
		if bytes.HasPrefix(line, []byte(tag)) {
			if !bytes.HasPrefix(line[len(tag):], []byte("OK")) {
				tb.Fatalf("%s: %s", cmd, line)
			}
			return n
		}
		n++
	}
}

func BenchmarkSelectFetchEnvelope10k(b *testing.B) {
	e := benchEnv(b, 10000)
	rc := e.raw(b)
	for b.Loop() {
		rc.do(b, "SELECT INBOX")
		if n := rc.do(b, "FETCH 1:* (FLAGS ENVELOPE)"); n != 10000 {
			b.Fatalf("%d responses", n)
		}
	}
}

func BenchmarkUIDFetchFlags10k(b *testing.B) {
	e := benchEnv(b, 10000)
	rc := e.raw(b)
	rc.do(b, "SELECT INBOX")
	for b.Loop() {
		if n := rc.do(b, "UID FETCH 1:* (FLAGS)"); n != 10000 {
			b.Fatalf("%d responses", n)
		}
	}
}

func BenchmarkSearchSubject10k(b *testing.B) {
	e := benchEnv(b, 10000)
	rc := e.raw(b)
	rc.do(b, "SELECT INBOX")
	for b.Loop() {
		rc.do(b, "UID SEARCH SUBJECT needle")
	}
}

func BenchmarkSearchBody10k(b *testing.B) {
	e := benchEnv(b, 10000)
	rc := e.raw(b)
	rc.do(b, "SELECT INBOX")
	for b.Loop() {
		rc.do(b, "UID SEARCH BODY pin")
	}
}

// BenchmarkIdleLatency measures a delivery (store.Deliver, which returns after the
// commit's fsync) until "* N EXISTS" reaches an idling go-imap client.
func BenchmarkIdleLatency(b *testing.B) {
	e := newEnv(b)
	exists := make(chan time.Time, 16)
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- time.Now()
			}
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", testPassword).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		b.Fatal(err)
	}
	body := benchBody(1)
	var lat, post []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if _, _, err := e.st.Deliver(context.Background(), &store.Delivery{Body: body, Targets: []store.Target{{AccountID: e.acc.ID}}}); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		select {
		case t := <-exists:
			lat = append(lat, t.Sub(start))
			post = append(post, max(t.Sub(committed), 0))
		case <-time.After(5 * time.Second):
			b.Fatalf("no EXISTS for delivery %d", i)
		}
	}
	idle.Close()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	// The part after Deliver returned (commit and fsync done): poke, read, write.
	slices.Sort(post)
	b.ReportMetric(float64(post[len(post)/2].Microseconds()), "after-commit-median-µs")
}

// BenchmarkIdleMemory opens 1,000 connections that log in, select INBOX and IDLE,
// and reports heap plus stack growth per connection (client ends included: a bare
// TCP connection each).
func BenchmarkIdleMemory(b *testing.B) {
	const conns = 1000
	e := benchEnv(b, 20)
	for b.Loop() {
		before := memUse()
		cs := make([]net.Conn, 0, conns)
		buf := make([]byte, 64<<10)
		for range conns {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
			fmt.Fprintf(c, "a LOGIN alice@example.org %s\r\nb SELECT INBOX\r\nc IDLE\r\n", testPassword)
			var got []byte
			for !bytes.Contains(got, []byte("+ idling")) {
				n, err := c.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				got = append(got, buf[:n]...)
			}
		}
		after := memUse()
		b.ReportMetric(float64(after-before)/conns, "bytes/conn")
		for _, c := range cs {
			fmt.Fprintf(c, "DONE\r\nd LOGOUT\r\n")
			c.Close()
		}
	}
}

func memUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}
