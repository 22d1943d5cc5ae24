package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
)

// The chat benchmark plays a second chatmail server that sends to the started one:
// peerDomain is its domain, which the started server does not serve, and its DKIM key
// (selector peerSelector) is published in the stub DNS, as the real peer's would be.
const (
	peerDomain   = "peer.example"
	peerSelector = "coibench"
)

// peerKey is the stand-in peer's DKIM key, made at start.
type peerKey struct {
	alg    string // "ed25519" or "rsa"
	signer crypto.Signer
	// forged is a key of the same kind that is published nowhere: a signature made
	// with it claims d=peerDomain but does not verify, which the server must refuse.
	forged crypto.Signer
	record dns.RR // the TXT record at peerSelector._domainkey.peerDomain
}

// newPeerKey generates an Ed25519 or RSA (2048-bit) key and its DNS record.
func newPeerKey(alg string) (*peerKey, error) {
	gen := func() (crypto.Signer, []byte, error) {
		switch alg {
		case "ed25519":
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			return priv, pub, err
		case "rsa":
			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, nil, err
			}
			der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
			return priv, der, err
		}
		return nil, nil, fmt.Errorf("unknown DKIM key type %q", alg)
	}
	k := &peerKey{alg: alg}
	signer, pub, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate DKIM key: %w", err)
	}
	if k.forged, _, err = gen(); err != nil {
		return nil, fmt.Errorf("generate DKIM key: %w", err)
	}
	k.signer = signer
	k.record = &dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(peerSelector + "._domainkey." + peerDomain), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
		Txt: splitTXT("v=DKIM1; k=" + alg + "; p=" + base64.StdEncoding.EncodeToString(pub)),
	}
	return k, nil
}

// splitTXT cuts s into the 255-octet character strings a TXT record holds; readers
// join them (RFC 6376 §3.6.2.2), which an RSA key's record needs.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// sign returns msg with a DKIM-Signature field of d=peerDomain prepended, made with
// signer (k.signer, or k.forged for a signature that must not verify); relaxed
// canonicalization and the fields a mail server signs. msg stays in wire form.
func (k *peerKey) sign(msg []byte, signer crypto.Signer) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(msg) + 600)
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain:                 peerDomain,
		Selector:               peerSelector,
		Signer:                 signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Chat-Version"},
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return out.Bytes(), nil
}

// peerMessage is one message the stand-in peer sends: envelope and signed body in
// wire form (CRLF, no line starting with a dot, no final dot), the same bytes over
// port 25 and /mxdeliv.
type peerMessage struct {
	from, rcpt string
	body       []byte
}

// peerSender is the address the peer's message i comes from: a few senders, as a
// relay's users would be.
func peerSender(i int) string { return fmt.Sprintf("bench%02d@%s", i%16, peerDomain) }

// peerMessages makes n encrypted-shaped messages of about size bytes (the signature
// included) signed with signer (k.signer or k.forged), message i from
// peerSender(first+i) to rcpts[i%len(rcpts)], From the envelope sender, so that d=
// is the From domain. They are made before any clock runs, on every CPU (an RSA
// signature takes a millisecond or two).
func peerMessages(k *peerKey, signer crypto.Signer, rcpts []string, first, n, size int) ([]peerMessage, error) {
	// The signature field's size, so that the whole message is about size bytes.
	probe, err := k.sign(chatMessage(mrand.New(mrand.NewPCG(1, 2)), peerSender(0), rcpts[0], 1, size), signer)
	if err != nil {
		return nil, err
	}
	body := max(size-(len(probe)-size), 1000)
	out := make([]peerMessage, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
			for i := w; i < n; i += workers {
				seq := first + i
				m := peerMessage{from: peerSender(seq), rcpt: rcpts[i%len(rcpts)]}
				m.body, errs[i] = k.sign(chatMessage(rng, m.from, m.rcpt, seq+1, body), signer)
				out[i] = m
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
