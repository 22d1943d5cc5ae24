package e2ee

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crlf turns a readable test message with "\n" line ends into wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// fixture reads a message from testdata. encrypted.eml is a 4 KB message in Delta
// Chat's layout, encrypted and signed by GnuPG 2.2 to two throwaway cv25519 keys, with
// its legacy-format PKESK headers rewritten in the OpenPGP format that rPGP (Delta
// Chat) writes; gnupg-old-format.eml is left as GnuPG writes it.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// filler is n bytes that stand in for key material or ciphertext: the rule never
// looks inside a packet.
func filler(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	return b
}

// pkt frames body as one packet with an OpenPGP (new) format header, choosing the
// shortest length encoding as writers do.
func pkt(tag byte, body []byte) []byte {
	out := []byte{0xC0 | tag}
	switch n := len(body); {
	case n < 192:
		out = append(out, byte(n))
	case n < 8384:
		n -= 192
		out = append(out, byte(n>>8)+192, byte(n))
	default:
		out = append(out, 255, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, body...)
}

// pktPartial frames body with partial body lengths of 1<<pow octets each, ending with
// an ordinary length for the rest, as streaming writers do for large messages.
func pktPartial(tag byte, body []byte, pow uint) []byte {
	out := []byte{0xC0 | tag}
	chunk := 1 << pow
	for len(body) > chunk {
		out = append(out, 224+byte(pow))
		out = append(out, body[:chunk]...)
		body = body[chunk:]
	}
	return append(out, pkt(0, body)[1:]...)
}

// cat concatenates packets into a payload.
func cat(pkts ...[]byte) []byte {
	var out []byte
	for _, p := range pkts {
		out = append(out, p...)
	}
	return out
}

// typical is what Delta Chat sends to one peer: a PKESK for the peer, one for the
// sender's own key, then the SEIPD.
func typical() []byte {
	return cat(pkt(tagPKESK, filler(94)), pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(700)))
}

// crc24 is the armor checksum of RFC 9580 6.1.
func crc24(b []byte) uint32 {
	crc := uint32(0xB704CE)
	for _, c := range b {
		crc ^= uint32(c) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864CFB
			}
		}
	}
	return crc & 0xFFFFFF
}

// armored wraps payload in ASCII armor with the given header lines, 64-column base64
// and a checksum line, using "\n" line ends.
func armored(payload []byte, headers ...string) string {
	var b strings.Builder
	b.WriteString("-----BEGIN PGP MESSAGE-----\n")
	for _, h := range headers {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n")
	c := crc24(payload)
	b.WriteString("=" + base64.StdEncoding.EncodeToString([]byte{byte(c >> 16), byte(c >> 8), byte(c)}) + "\n")
	b.WriteString("-----END PGP MESSAGE-----")
	return b.String()
}

// pgpMIME is an RFC 3156 message in Delta Chat's layout around the given armor.
func pgpMIME(armor string) []byte {
	return crlf(`From: <alice@chat.example>
To: <bob@relay.example>
Subject: [...]
Chat-Version: 1.0
MIME-Version: 1.0
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
 boundary="Bnd42"

--Bnd42
Content-Type: application/pgp-encrypted

Version: 1

--Bnd42
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Disposition: inline; filename="encrypted.asc"

` + armor + `
--Bnd42--
`)
}

// encMsg is pgpMIME with the given header section and parts, for structure tests;
// each part is a whole entity (fields, empty line, body).
func encMsg(contentType string, parts ...string) []byte {
	s := "From: <alice@chat.example>\nTo: <bob@relay.example>\nMIME-Version: 1.0\nContent-Type: " + contentType + "\n\n"
	for _, p := range parts {
		s += "--B\n" + p + "\n"
	}
	return crlf(s + "--B--\n")
}

const (
	versionPart = "Content-Type: application/pgp-encrypted\n\nVersion: 1\n"
	encType     = `multipart/encrypted; protocol="application/pgp-encrypted"; boundary="B"`
)

func dataPart(armor string) string {
	return "Content-Type: application/octet-stream\n\n" + armor
}

// secureJoin is a vc-request or vg-request as Delta Chat sends it.
func secureJoin(field, body string) []byte {
	return crlf(`From: <alice@chat.example>
To: <bob@relay.example>
Subject: Message from alice
Secure-Join: ` + field + `
Secure-Join-Invitenumber: 8RJhUYmO7N0Xr2qY4Rj2H0Yw
Chat-Version: 1.0
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="SJ"

--SJ
Content-Type: text/plain; charset="utf-8"

` + body + `
--SJ--
`)
}
