package dkim

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
)

// maxTXTString is the longest character-string a TXT record can hold (RFC 1035 3.3).
const maxTXTString = 255

// Record is one DNS TXT record publishing a public key.
type Record struct {
	Name  string // "<selector>._domainkey.<domain>." (fully qualified)
	Value string // the record's text, e.g. "v=DKIM1; k=ed25519; p=…", unsplit
}

// Records returns the key records domain must publish for keys, Ed25519 first.
func Records(domain string, keys *DomainKeys) ([]Record, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("make dkim records: %w", err)
	}
	var recs []Record
	for _, k := range []Key{keys.Ed25519, keys.RSA} {
		var p []byte
		switch pub := k.Signer.Public().(type) {
		case ed25519.PublicKey:
			// RFC 8463 3: the raw 32-byte key, not a SubjectPublicKeyInfo.
			p = pub
		default:
			if p, err = x509.MarshalPKIXPublicKey(pub); err != nil {
				return nil, fmt.Errorf("make dkim record for %s: %w", k.Selector, err)
			}
		}
		recs = append(recs, Record{
			Name:  k.Selector + "._domainkey." + d + ".",
			Value: fmt.Sprintf("v=DKIM1; k=%s; p=%s", k.Algorithm(), base64.StdEncoding.EncodeToString(p)),
		})
	}
	return recs, nil
}

// ZoneLine renders r as one zone-file line, the value split into quoted strings of at
// most 255 bytes as TXT requires; resolvers join them back (RFC 6376 3.6.2.2).
func (r Record) ZoneLine() string {
	var b strings.Builder
	b.WriteString(r.Name)
	b.WriteString(" 3600 IN TXT")
	for _, chunk := range r.Strings() {
		b.WriteString(` "`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(chunk))
		b.WriteString(`"`)
	}
	return b.String()
}

// Strings returns the value cut into TXT character-strings of at most 255 bytes, for
// DNS provider APIs that take them separately.
func (r Record) Strings() []string {
	var chunks []string
	v := r.Value
	for len(v) > maxTXTString {
		chunks = append(chunks, v[:maxTXTString])
		v = v[maxTXTString:]
	}
	return append(chunks, v)
}
