package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// OpenPGP packet tags (RFC 9580 §5) the generated chat messages carry.
const (
	pgpTagPKESK = 1  // public-key encrypted session key
	pgpTagSEIPD = 18 // symmetrically encrypted and integrity protected data
)

// pkeskBodyLen is the PKESK body of a generated message: about what a v3 PKESK for an
// X25519 key takes (version, key ID, algorithm, ephemeral key, wrapped session key).
const pkeskBodyLen = 90

// pgpLength encodes an OpenPGP packet body length as RFC 9580 §4.2.1 has it: one
// octet below 192, two octets up to 8383, else 0xFF and four octets.
func pgpLength(n int) []byte {
	switch {
	case n < 192:
		return []byte{byte(n)}
	case n <= 8383:
		n -= 192
		return []byte{byte(n>>8) + 192, byte(n)}
	}
	return []byte{0xFF, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// pgpPacket appends a new-format packet (tag octet 0xC0|tag, then the length).
func pgpPacket(dst []byte, tag byte, body []byte) []byte {
	dst = append(dst, 0xC0|tag)
	dst = append(dst, pgpLength(len(body))...)
	return append(dst, body...)
}

// pgpPayload returns about raw bytes of OpenPGP packets shaped as a message encrypted
// to one key: a PKESK, then one SEIPD running to the end. The bodies are random bytes:
// the server only reads the framing (chatmail spec §6.1), and random data is what
// ciphertext looks like.
func pgpPayload(rng *rand.Rand, raw int) []byte {
	pkesk := make([]byte, pkeskBodyLen)
	randomBytes(rng, pkesk)
	out := pgpPacket(make([]byte, 0, raw+8), pgpTagPKESK, pkesk)
	// The SEIPD body is what is left after its own header, whose size depends on it.
	avail := raw - len(out)
	n := avail - 2
	if n >= 192 {
		n = avail - 3
	}
	if n > 8383 {
		n = avail - 6
	}
	seipd := make([]byte, max(n, 16))
	randomBytes(rng, seipd)
	return pgpPacket(out, pgpTagSEIPD, seipd)
}

func randomBytes(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, len(b)); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}

// armorLine is how many base64 characters one armor line holds (RFC 9580 §6.3 allows
// up to 76), which 57 bytes of data fill.
const armorLine = 76

// chatMessage builds the seq-th message from one chatmail account to another, about
// size bytes, in wire form (CRLF, no line starting with a dot), shaped as Delta Chat
// sends an end-to-end-encrypted message: PGP/MIME (RFC 3156) multipart/encrypted, part
// 1 application/pgp-encrypted "Version: 1", part 2 application/octet-stream holding an
// ASCII-armored OpenPGP message without armor headers, whose packets are one PKESK and
// one SEIPD. From is the sender, as the server requires of a chatmail submission (and
// the Message-ID is of the sender's domain). The
// Subject is a real one, so that the server's replacing it with "[...]" shows.
func chatMessage(rng *rand.Rand, from, to string, seq, size int) []byte {
	boundary := fmt.Sprintf("coibench-%016x", rng.Uint64())
	var head bytes.Buffer
	fmt.Fprintf(&head, "From: <%s>\r\nTo: <%s>\r\nSubject: coibench chat message %d\r\nDate: %s\r\nMessage-ID: <%016x.%d@%s>\r\n",
		from, to, seq, time.Now().Format(time.RFC1123Z), rng.Uint64(), seq, from[strings.LastIndexByte(from, '@')+1:])
	fmt.Fprintf(&head, "Chat-Version: 1.0\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&head, "--%s\r\nContent-Type: application/pgp-encrypted; charset=utf-8\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n", boundary)
	fmt.Fprintf(&head, "--%s\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\";\r\n charset=utf-8\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\";\r\n\r\n", boundary)
	// No armor header lines: outgoing chatmail mail must not have them (§6.1), so the
	// empty line follows the BEGIN line at once.
	head.WriteString("-----BEGIN PGP MESSAGE-----\r\n\r\n")
	tail := fmt.Sprintf("-----END PGP MESSAGE-----\r\n\r\n--%s--\r\n", boundary)

	// Each armor line of 76 characters plus CRLF carries 57 bytes of packets.
	room := size - head.Len() - len(tail)
	payload := pgpPayload(rng, max(room, 0)*57/(armorLine+2))

	enc := base64.StdEncoding.EncodeToString(payload)
	var b bytes.Buffer
	b.Grow(head.Len() + len(enc) + len(enc)/armorLine*2 + len(tail) + 4)
	b.Write(head.Bytes())
	for len(enc) > 0 {
		n := min(armorLine, len(enc))
		b.WriteString(enc[:n])
		b.WriteString("\r\n")
		enc = enc[n:]
	}
	b.WriteString(tail)
	return b.Bytes()
}
