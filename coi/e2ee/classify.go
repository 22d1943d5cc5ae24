package e2ee

import (
	"bytes"
	"fmt"
)

// Direction is which way a message travels, which decides how strict the armor rule is.
type Direction uint8

const (
	// Incoming is mail arriving for local accounts; its armor may carry header lines.
	Incoming Direction = iota + 1
	// Outgoing is mail a chatmail account submits; its armor must not, because Delta
	// Chat never writes them and they could carry identifying text in the clear.
	Outgoing
)

func (d Direction) String() string {
	switch d {
	case Incoming:
		return "incoming"
	case Outgoing:
		return "outgoing"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Class is what a message is as far as encryption enforcement cares (§6.1).
type Class uint8

const (
	// Cleartext is everything that is neither of the others, including every message
	// that could not be parsed.
	Cleartext Class = iota
	// Encrypted is an OpenPGP/MIME message (RFC 3156) whose payload is nothing but
	// session keys and one integrity-protected encrypted packet.
	Encrypted
	// SecureJoinRequest is the one unencrypted step of the Secure-Join handshake
	// (vc-request or vg-request): the peer has no key to encrypt to yet.
	SecureJoinRequest
)

func (c Class) String() string {
	switch c {
	case Cleartext:
		return "cleartext"
	case Encrypted:
		return "encrypted"
	case SecureJoinRequest:
		return "securejoin-request"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Classify says whether msg, a whole RFC 5322 message, is encrypted, a Secure-Join
// request or cleartext when travelling in direction dir. It never fails: input it
// cannot make sense of is Cleartext.
func Classify(msg []byte, dir Direction) Class {
	m := parse(msg)
	return m.class(dir)
}

// message is a message split as far as the rules need, with the encryption check done
// once so that one message can be judged in both directions.
type message struct {
	hdr      fields
	body     []byte
	typ      string // top-level media type, lower case
	boundary string

	checked      bool
	armorHeaders bool
	why          string // why the message is not encrypted even by the incoming rules
}

func parse(msg []byte) *message {
	m := &message{}
	m.hdr, m.body = splitEntity(msg)
	m.typ, m.boundary = mediaType(m.hdr.contentType)
	return m
}

func (m *message) class(dir Direction) Class {
	if ok, _ := m.encrypted(dir); ok {
		return Encrypted
	}
	if m.secureJoinRequest() {
		return SecureJoinRequest
	}
	return Cleartext
}

// encrypted applies §6.1: multipart/encrypted with exactly two non-multipart parts,
// application/pgp-encrypted saying "Version: 1", then application/octet-stream
// holding the armored payload. why says what failed, for logs.
func (m *message) encrypted(dir Direction) (ok bool, why string) {
	if !m.checked {
		m.checked = true
		m.armorHeaders, m.why = m.checkEncrypted()
	}
	switch {
	case m.why != "":
		return false, m.why
	case dir != Incoming && m.armorHeaders: // an unset Direction gets the strict rule
		return false, "outgoing armor has header lines"
	}
	return true, ""
}

func (m *message) checkEncrypted() (armorHeaders bool, why string) {
	if m.typ != "multipart/encrypted" {
		return false, "not multipart/encrypted"
	}
	parts, ok := splitMultipart(m.body, m.boundary, 2)
	if !ok || len(parts) != 2 {
		return false, "multipart/encrypted does not have exactly two parts"
	}
	h1, b1 := splitEntity(parts[0])
	h2, b2 := splitEntity(parts[1])
	t1, _ := mediaType(h1.contentType)
	t2, _ := mediaType(h2.contentType)
	switch {
	case t1 != "application/pgp-encrypted":
		return false, "part 1 is not application/pgp-encrypted"
	case t2 != "application/octet-stream":
		return false, "part 2 is not application/octet-stream"
	}
	// The type checks above already rule out multipart parts.
	if v, ok := decodeBody(h1.encoding, b1); !ok || string(bytes.TrimSpace(v)) != "Version: 1" {
		return false, `part 1 does not say "Version: 1"`
	}
	armor, ok := decodeBody(h2.encoding, b2)
	if !ok {
		return false, "part 2 does not decode"
	}
	return checkArmor(armor)
}

// secureJoinRequest applies the Secure-Join exception of §6.1: a first Secure-Join field
// of exactly vc-request or vg-request, on a multipart message whose only part is
// text/plain and says "Secure-Join: vc-request" or "…: vg-request" (in any case).
// Later steps are encrypted and need no exception.
func (m *message) secureJoinRequest() bool {
	sj := m.hdr.secureJoin
	if sj == nil {
		return false
	}
	if v := unfold(sj); string(v) != "vc-request" && string(v) != "vg-request" {
		return false
	}
	if !isMultipart(m.typ) {
		return false
	}
	parts, ok := splitMultipart(m.body, m.boundary, 1)
	if !ok || len(parts) != 1 {
		return false
	}
	h, b := splitEntity(parts[0])
	if t, _ := mediaType(h.contentType); t != "text/plain" {
		return false
	}
	v, ok := decodeBody(h.encoding, b)
	if !ok {
		return false
	}
	// The whole body must be the request line, so no chat text travels in the clear
	// with it. Either line goes with either field value, as at the relay.
	v = bytes.TrimSpace(v)
	return asciiEqualFold(v, "secure-join: vc-request") || asciiEqualFold(v, "secure-join: vg-request")
}
