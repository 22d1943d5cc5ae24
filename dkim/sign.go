package dkim

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// oversigned header fields are listed in h= once more than they occur, so that nobody
// can add another instance after signing (RFC 6376 8.15): a second From, a Reply-To
// or an Autocrypt key slipped in by a relay would change what the reader sees.
var oversigned = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Autocrypt", "Autocrypt-Setup-Message",
	"Disposition-Notification-To", "Chat-Version", "Chat-Disposition-Notification-To",
	"Secure-Join", "Secure-Join-Invitenumber", "Secure-Join-Auth", "Secure-Join-Fingerprint",
	"Secure-Join-Group",
}

// signedIfPresent header fields are signed as they are but not oversigned: mailing
// list software adds them legitimately, and a signature that survives that is worth
// more than one that cannot.
var signedIfPresent = []string{
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Post", "List-Help",
	"List-Subscribe", "List-Owner", "List-Archive", "Content-Disposition",
	"Content-Language", "Chat-Group-ID", "Chat-Group-Name", "Chat-Content",
	"Chat-Verified", "Chat-Is-Bot",
}

// Sign returns the DKIM-Signature header fields (Ed25519 first, then RSA, each ending
// in CRLF) to prepend to msg, signed as domain with the keys the store holds for it.
func (s *KeyStore) Sign(ctx context.Context, domain string, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	keys, err := s.Load(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return keys.Sign(msg)
}

// Sign returns the DKIM-Signature header fields (Ed25519 first, then RSA, each ending
// in CRLF) to prepend to msg. Both use relaxed/relaxed canonicalization, which
// survives the re-folding and white-space changes relays are known to make.
func (k *DomainKeys) Sign(msg []byte) ([]byte, error) {
	fields, complete := headerFields(msg)
	if !complete {
		msg = completeHeader(msg)
	}
	headerKeys := signedHeaderKeys(fields)
	var out bytes.Buffer
	for _, key := range []Key{k.Ed25519, k.RSA} {
		signer, err := msgdkim.NewSigner(&msgdkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               key.Selector,
			Signer:                 key.Signer,
			HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
			BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
			HeaderKeys:             headerKeys,
		})
		if err != nil {
			return nil, fmt.Errorf("dkim sign as %s: %w", k.Domain, err)
		}
		if _, err := signer.Write(msg); err != nil {
			_ = signer.Close()
			return nil, fmt.Errorf("dkim sign as %s: %w", k.Domain, err)
		}
		if err := signer.Close(); err != nil {
			return nil, fmt.Errorf("dkim sign as %s: %w", k.Domain, err)
		}
		out.WriteString(signer.Signature())
	}
	return out.Bytes(), nil
}

// signedHeaderKeys lists every signable field as often as it occurs, plus once more
// for the oversigned ones, whether present or not.
func signedHeaderKeys(fields []field) []string {
	count := make(map[string]int, len(fields))
	for _, f := range fields {
		count[strings.ToLower(f.name)]++
	}
	keys := make([]string, 0, 2*len(oversigned))
	for _, name := range oversigned {
		for range count[strings.ToLower(name)] + 1 {
			keys = append(keys, name)
		}
	}
	for _, name := range signedIfPresent {
		for range count[strings.ToLower(name)] {
			keys = append(keys, name)
		}
	}
	return keys
}

// completeHeader adds the empty line that ends the header to a message without body,
// which go-msgauth cannot read otherwise. Canonicalization gives the same result as
// for the message without it (an empty body either way), so the signature holds for
// the message as sent.
func completeHeader(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+4)
	out = append(out, msg...)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, "\r\n"...)
	}
	return append(out, "\r\n"...)
}
