package main

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coibox/coibox/coi/e2ee"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
)

// verifyPeer checks msg's DKIM signatures against the peer key's published record, as
// the server's verifier (go-msgauth) does with what the stub DNS answers.
func verifyPeer(t *testing.T, k *peerKey, msg []byte) []*dkim.Verification {
	t.Helper()
	txt := k.record.(*dns.TXT)
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if dns.Fqdn(name) != txt.Hdr.Name {
			return nil, errors.New("no such record: " + name)
		}
		return []string{strings.Join(txt.Txt, "")}, nil
	}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return verifs
}

// TestPeerMessages checks what the stand-in peer sends: for each key type, messages
// of about the size asked for, signed with d= the From domain (the peer's, not one
// the server serves), verifying with the published record and failing with the
// forged key, still encrypted to the server's classifier and in wire form.
func TestPeerMessages(t *testing.T) {
	rcpts := []string{"aaaaaaaaa@" + chatDomain, "bbbbbbbbb@" + chatDomain}
	for _, alg := range []string{"ed25519", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			k, err := newPeerKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			txt := k.record.(*dns.TXT)
			if txt.Hdr.Name != "coibench._domainkey.peer.example." || !strings.HasPrefix(strings.Join(txt.Txt, ""), "v=DKIM1; k="+alg+"; p=") {
				t.Fatalf("record %v", k.record)
			}
			for _, s := range txt.Txt {
				if len(s) > 255 {
					t.Fatalf("TXT string of %d octets", len(s))
				}
			}
			msgs, err := peerMessages(k, k.signer, rcpts, 10, 5, 4000)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				if m.rcpt != rcpts[i%2] || !strings.HasSuffix(m.from, "@"+peerDomain) {
					t.Errorf("message %d: from %s to %s", i, m.from, m.rcpt)
				}
				if n := len(m.body); n < 3880 || n > 4120 {
					t.Errorf("message %d: %d bytes, want 4000 ± 3%%", i, n)
				}
				if !wireForm(m.body) || !bytes.HasPrefix(m.body, []byte("DKIM-Signature: ")) {
					t.Errorf("message %d: want wire form, the signature first", i)
				}
				hdr, err := mail.ReadMessage(bytes.NewReader(m.body))
				if err != nil {
					t.Fatal(err)
				}
				if from, _ := mail.ParseAddress(hdr.Header.Get("From")); from == nil || from.Address != m.from {
					t.Errorf("message %d: From %q, want the envelope sender %s", i, hdr.Header.Get("From"), m.from)
				}
				if got := e2ee.Classify(m.body, e2ee.Incoming); got != e2ee.Encrypted {
					t.Errorf("message %d: classified %v", i, got)
				}
				v := verifyPeer(t, k, m.body)
				if len(v) != 1 || v[0].Err != nil || v[0].Domain != peerDomain {
					t.Errorf("message %d: verification %+v", i, v[0])
				}
			}
			if bytes.Equal(msgs[0].body[600:], msgs[1].body[600:]) {
				t.Error("two messages alike")
			}
			bad, err := peerMessages(k, k.forged, rcpts, 0, 1, 4000)
			if err != nil {
				t.Fatal(err)
			}
			if v := verifyPeer(t, k, bad[0].body); len(v) != 1 || v[0].Err == nil || v[0].Domain != peerDomain {
				t.Errorf("forged: verification %+v; want a failure for d=%s", v[0], peerDomain)
			}
		})
	}
	if _, err := newPeerKey("dsa"); err == nil {
		t.Error("newPeerKey(dsa) did not fail")
	}
}

func TestSplitTXT(t *testing.T) {
	s := strings.Repeat("a", 600)
	got := splitTXT(s)
	if len(got) != 3 || len(got[0]) != 255 || len(got[1]) != 255 || strings.Join(got, "") != s {
		t.Errorf("splitTXT of 600: %d strings", len(got))
	}
	if got := splitTXT("short"); len(got) != 1 || got[0] != "short" {
		t.Errorf("splitTXT(short) = %q", got)
	}
}

func TestParallel(t *testing.T) {
	var ran atomic.Int64
	if err := parallel(context.Background(), 4, 100, func(int) error { ran.Add(1); return nil }); err != nil || ran.Load() != 100 {
		t.Errorf("ran %d, err %v; want 100, nil", ran.Load(), err)
	}
	ran.Store(0)
	boom := errors.New("boom")
	err := parallel(context.Background(), 4, 1000, func(i int) error {
		ran.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || ran.Load() >= 1000 {
		t.Errorf("ran %d, err %v; want boom and a stop", ran.Load(), err)
	}
}
