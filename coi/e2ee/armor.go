package e2ee

import (
	"bytes"
	"encoding/base64"
)

// OpenPGP packet tags (RFC 9580 5) the payload rule names.
const (
	tagPKESK = 1  // public-key encrypted session key
	tagSKESK = 3  // symmetric-key encrypted session key
	tagSEIPD = 18 // symmetrically encrypted and integrity protected data
)

const (
	armorBegin = "-----BEGIN PGP MESSAGE-----"
	armorEnd   = "-----END PGP MESSAGE-----"
)

// checkArmor reports whether b is one ASCII-armored OpenPGP message (RFC 9580 6.2)
// whose packets pass checkPackets. headers tells whether the armor carried header
// lines ("Version: …", "Comment: …"), which incoming mail may have and outgoing mail
// may not (§6.1). why says what failed, for logs; it is "" on success.
func checkArmor(b []byte) (headers bool, why string) {
	b = bytes.TrimSpace(b)
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	if string(trimLine(first)) != armorBegin {
		return false, "part 2 does not start with " + armorBegin
	}
	cut := bytes.LastIndexByte(rest, '\n')
	if cut < 0 || string(trimLine(rest[cut+1:])) != armorEnd {
		return false, "part 2 does not end with " + armorEnd
	}
	rest = rest[:cut+1]

	// Header lines come first and are the only lines with a colon, which is not in the
	// base64 alphabet; empty lines may separate them from the data.
	data, dataEnd := -1, len(rest)
	for i := 0; i < len(rest); {
		end := i + bytes.IndexByte(rest[i:], '\n') // rest ends with '\n'
		line := rest[i:end]
		t := trimLine(line)
		switch {
		case len(t) == 0:
		case data < 0 && bytes.IndexByte(t, ':') >= 0:
			headers = true
		case t[0] == '=':
			// The CRC-24 line. RFC 9580 6.1: a receiver must not reject a message for a
			// missing, malformed or wrong checksum, so it is neither required nor checked.
			if data < 0 {
				return headers, "armor has no data"
			}
			dataEnd = i
			if len(bytes.TrimSpace(rest[end:])) != 0 {
				return headers, "armor has lines after its checksum"
			}
			i = len(rest)
			continue
		default:
			if data < 0 {
				data = i
			}
		}
		i = end + 1
	}
	if data < 0 {
		return headers, "armor has no data"
	}
	enc := rest[data:dataEnd]
	// Spaces and tabs are dropped wherever they are, as the relay does: trailing ones
	// are allowed (RFC 9580 6.2) and the decoder would refuse them.
	if bytes.ContainsAny(enc, " \t") {
		clean := make([]byte, 0, len(enc))
		for _, c := range enc {
			if c != ' ' && c != '\t' {
				clean = append(clean, c)
			}
		}
		enc = clean
	}
	// The standard decoder skips CR and LF itself, so the lines need not be joined.
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Decode(raw, enc)
	if err != nil {
		return headers, "armor data is not base64"
	}
	return headers, checkPackets(raw[:n])
}

// trimLine drops a line's CR and trailing white space, which armor readers ignore.
func trimLine(line []byte) []byte { return bytes.TrimRight(line, " \t\r") }

// checkPackets reports whether p is zero or more PKESK or SKESK packets followed by
// exactly one SEIPD packet that ends where p ends (§6.1); why says what failed, or is
// "" when it passed.
//
// Only the packet framing of RFC 9580 4.2 is read: the tag octet and the body length,
// including partial body lengths. That is a few lines, and every OpenPGP library for
// Go either is deprecated (golang.org/x/crypto/openpgp) or would parse, allocate and
// validate whole packets that the rule never looks inside.
func checkPackets(p []byte) (why string) {
	if len(p) == 0 {
		return "armor holds no packets"
	}
	for i := 0; i < len(p); {
		tag := p[i]
		if tag&0xC0 != 0xC0 {
			// Bit 7 clear is not a packet at all; bit 6 clear is the legacy format,
			// which the rule refuses (GnuPG 2.2 still writes its PKESKs that way).
			return "packet header is not in OpenPGP (new) format"
		}
		typ := tag & 0x3F
		i++
		for {
			if i >= len(p) {
				return "packet header is truncated"
			}
			var n uint64
			switch o := p[i]; {
			case o < 192:
				n, i = uint64(o), i+1
			case o < 224:
				if i+1 >= len(p) {
					return "packet header is truncated"
				}
				n, i = uint64(o-192)<<8+uint64(p[i+1])+192, i+2
			case o == 255:
				if i+4 >= len(p) {
					return "packet header is truncated"
				}
				n = uint64(p[i+1])<<24 | uint64(p[i+2])<<16 | uint64(p[i+3])<<8 | uint64(p[i+4])
				i += 5
			default:
				// A partial body length: this chunk, then another length header.
				n = 1 << (o & 0x1F)
				i++
				if n > uint64(len(p)-i) {
					return "packet body is truncated"
				}
				i += int(n)
				continue
			}
			if n > uint64(len(p)-i) {
				return "packet body is truncated"
			}
			i += int(n)
			break
		}
		switch {
		case i == len(p) && typ == tagSEIPD:
			return ""
		case i == len(p):
			return "last packet is not SEIPD (tag 18)"
		case typ != tagPKESK && typ != tagSKESK:
			return "a packet before the last is not PKESK or SKESK (tags 1, 3)"
		}
	}
	return "packet body is truncated" // not reached: the loop returns at the end of p
}
