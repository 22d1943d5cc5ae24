package webpush

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkSeal is the CPU cost of one notification request: a fresh key pair, ECDH,
// the key derivation, AES-GCM, and the ES256 token.
func BenchmarkSeal(b *testing.B) {
	s, sub := benchService(b)
	p, ok := buildPayload(Delivery{Mailbox: "INBOX", UIDValidity: 1, UID: 2, Message: []byte(chatMessage)})
	if !ok {
		b.Fatal("no payload")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.seal(sub, p.json); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNotify is what a delivery costs the pipeline's post-commit hook: a 4 KB
// message scanned and queued (the benchmark takes it off the queue again).
func BenchmarkNotify(b *testing.B) {
	s, _ := benchService(b)
	msg := []byte(chatMessage + strings.Repeat("x", 4096-len(chatMessage)))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UIDValidity: 1, UID: 2, Chat: true, Message: msg})
		<-s.deliveries
	}
}

func benchService(b *testing.B) (*Service, *Subscription) {
	st := newMemStore()
	s, err := New(testKey(b), Options{PrimaryDomain: "example.org", Load: st.load, Remove: st.remove})
	if err != nil {
		b.Fatal(err)
	}
	ua := newUserAgent(b)
	sub, err := DecodeStored(validated(b, ua, "https://push.example.net/p", "all", "", time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	return s, sub
}

// BenchmarkRender is a worker's cost of building the payload of a 4 KB message, paid
// only for accounts with a validated subscription.
func BenchmarkRender(b *testing.B) {
	msg := []byte(chatMessage + strings.Repeat("x", 4096-len(chatMessage)))
	sc, _ := scan(Delivery{Account: 1, Mailbox: "INBOX", UIDValidity: 1, UID: 2, Chat: true, Message: msg})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := sc.render(); !ok {
			b.Fatal("no payload")
		}
	}
}
