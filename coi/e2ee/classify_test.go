package e2ee

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// classifyCase is a message and its class in each direction.
type classifyCase struct {
	name    string
	msg     []byte
	in, out Class
}

// classifyCases covers every rule of §6.1; the fuzz seed corpus was made from them.
func classifyCases(t testing.TB) []classifyCase {
	good := armored(typical())
	b64 := func(s string) string {
		enc := base64.StdEncoding.EncodeToString(crlf(s))
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		return b.String() + enc
	}
	qp := func(s string) string {
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write(crlf(s))
		w.Close()
		return b.String()
	}
	// armorWith replaces the data of good's armor by payload.
	armorWith := func(payload []byte) string { return armored(payload) }

	return []classifyCase{
		// Real messages.
		{"gnupg message reframed as rPGP writes it", fixture(t, "encrypted.eml"), Encrypted, Encrypted},
		{"gnupg 2.2 message with legacy PKESK headers", fixture(t, "gnupg-old-format.eml"), Cleartext, Cleartext},

		// §6.1 MIME structure.
		{"delta chat layout", pgpMIME(good), Encrypted, Encrypted},
		{"bare LF line ends", bytes.ReplaceAll(pgpMIME(good), []byte("\r\n"), []byte("\n")), Encrypted, Encrypted},
		{"media types in upper case", encMsg(`MULTIPART/ENCRYPTED; boundary=B`, "Content-Type: Application/PGP-Encrypted\n\nVersion: 1", "Content-Type: APPLICATION/OCTET-STREAM\n\n"+good), Encrypted, Encrypted},
		{"preamble and epilogue", crlf("Content-Type: " + encType + "\n\nThis is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n--B\n" + versionPart + "\n--B\n" + dataPart(good) + "\n--B--\nepilogue\n"), Encrypted, Encrypted},
		{"transport padding after delimiters", crlf("Content-Type: " + encType + "\n\n--B  \n" + versionPart + "\n--B\t\n" + dataPart(good) + "\n--B-- \n"), Encrypted, Encrypted},
		{"no close delimiter", crlf("Content-Type: " + encType + "\n\n--B\n" + versionPart + "\n--B\n" + dataPart(good) + "\n"), Encrypted, Encrypted},
		{"lines merely containing the boundary are not delimiters", crlf("Content-Type: " + encType + "\n\nx--B\n--Bogus\n--B\n" + versionPart + "\n--B\n" + dataPart(good) + "\n--B--\n"), Encrypted, Encrypted},
		{"version part padded with white space", encMsg(encType, "Content-Type: application/pgp-encrypted\n\n\n  Version: 1 \n\n", dataPart(good)), Encrypted, Encrypted},
		{"version part quoted-printable", encMsg(encType, "Content-Type: application/pgp-encrypted\nContent-Transfer-Encoding: quoted-printable\n\nVersion:=201", dataPart(good)), Encrypted, Encrypted},
		{"armor base64 encoded", encMsg(encType, versionPart, "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+b64(good)), Encrypted, Encrypted},
		{"armor quoted-printable", encMsg(encType, versionPart, "Content-Type: application/octet-stream\nContent-Transfer-Encoding: Quoted-Printable\n\n"+qp(good)), Encrypted, Encrypted},
		{"unknown transfer encoding", encMsg(encType, versionPart, "Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode\n\n"+good), Cleartext, Cleartext},
		{"bad base64 transfer encoding", encMsg(encType, versionPart, "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n!!"+b64(good)), Cleartext, Cleartext},
		{"multipart/mixed", encMsg(`multipart/mixed; boundary=B`, versionPart, dataPart(good)), Cleartext, Cleartext},
		{"multipart/signed", encMsg(`multipart/signed; boundary=B`, versionPart, dataPart(good)), Cleartext, Cleartext},
		{"no Content-Type", crlf("From: <a@b.example>\n\n" + good), Cleartext, Cleartext},
		{"bare armor as text/plain", crlf("Content-Type: text/plain\n\n" + good), Cleartext, Cleartext},
		{"unparsable Content-Type", encMsg(`multipart/encrypted; boundary=B; boundary=C`, versionPart, dataPart(good)), Cleartext, Cleartext},
		{"no boundary", encMsg(`multipart/encrypted`, versionPart, dataPart(good)), Cleartext, Cleartext},
		{"wrong boundary", encMsg(`multipart/encrypted; boundary=C`, versionPart, dataPart(good)), Cleartext, Cleartext},
		{"only the version part", encMsg(encType, versionPart), Cleartext, Cleartext},
		{"only the data part", encMsg(encType, dataPart(good)), Cleartext, Cleartext},
		{"three parts", encMsg(encType, versionPart, dataPart(good), "Content-Type: text/plain\n\nhello"), Cleartext, Cleartext},
		{"parts swapped", encMsg(encType, dataPart(good), versionPart), Cleartext, Cleartext},
		{"version part says 2", encMsg(encType, "Content-Type: application/pgp-encrypted\n\nVersion: 2", dataPart(good)), Cleartext, Cleartext},
		{"version part empty", encMsg(encType, "Content-Type: application/pgp-encrypted\n", dataPart(good)), Cleartext, Cleartext},
		{"version part lower case", encMsg(encType, "Content-Type: application/pgp-encrypted\n\nversion: 1", dataPart(good)), Cleartext, Cleartext},
		{"first part text/plain", encMsg(encType, "Content-Type: text/plain\n\nVersion: 1", dataPart(good)), Cleartext, Cleartext},
		{"second part text/plain", encMsg(encType, versionPart, "Content-Type: text/plain\n\n"+good), Cleartext, Cleartext},
		{"second part untyped", encMsg(encType, versionPart, "\n"+good), Cleartext, Cleartext},
		{"nested multipart part", encMsg(encType, versionPart, "Content-Type: multipart/mixed; boundary=C\n\n--C\n"+dataPart(good)+"\n--C--"), Cleartext, Cleartext},

		// §6.1 armor.
		{"armor Version header", pgpMIME(armored(typical(), "Version: GnuPG v2")), Encrypted, Cleartext},
		{"armor Comment headers", pgpMIME(armored(typical(), "Comment: https://example.org", "Comment: second")), Encrypted, Cleartext},
		{"armor header without empty line", pgpMIME(strings.Replace(armored(typical(), "Version: 1"), "Version: 1\n\n", "Version: 1\n", 1)), Encrypted, Cleartext},
		{"armor without empty line", pgpMIME(strings.Replace(good, "-----\n\n", "-----\n", 1)), Encrypted, Encrypted},
		{"armor without checksum", pgpMIME(good[:strings.LastIndex(good, "\n=")] + "\n-----END PGP MESSAGE-----"), Encrypted, Encrypted},
		{"armor with a wrong checksum", pgpMIME(good[:strings.LastIndex(good, "\n=")] + "\n=AAAA\n-----END PGP MESSAGE-----"), Encrypted, Encrypted},
		{"armor with a malformed checksum", pgpMIME(good[:strings.LastIndex(good, "\n=")] + "\n=4cf0a3\n-----END PGP MESSAGE-----"), Encrypted, Encrypted},
		{"armor lines with trailing white space", pgpMIME(strings.ReplaceAll(good, "\n", " \t\n")), Encrypted, Encrypted},
		{"space inside a data line", pgpMIME(good[:33] + " " + good[33:]), Encrypted, Encrypted},
		{"white space lines inside the data", pgpMIME(strings.Replace(good, "\n=", "\n \t\n=", 1)), Encrypted, Encrypted},
		{"armor surrounded by empty lines", pgpMIME("\n\n" + good + "\n\n"), Encrypted, Encrypted},
		{"empty line inside the data", pgpMIME(strings.Replace(good, "\n", "\n\n", 4)), Encrypted, Encrypted},
		{"text before the armor", pgpMIME("hello\n" + good), Cleartext, Cleartext},
		{"text after the armor", pgpMIME(good + "\nhello"), Cleartext, Cleartext},
		{"no END line", pgpMIME(strings.TrimSuffix(good, "-----END PGP MESSAGE-----")), Cleartext, Cleartext},
		{"no BEGIN line", pgpMIME(strings.TrimPrefix(good, "-----BEGIN PGP MESSAGE-----\n")), Cleartext, Cleartext},
		{"signature armor", pgpMIME(strings.ReplaceAll(good, "MESSAGE", "SIGNATURE")), Cleartext, Cleartext},
		{"lines after the checksum", pgpMIME(strings.Replace(good, "\n-----END", "\nQUJD\n-----END", 1)), Cleartext, Cleartext},
		{"header line after the data", pgpMIME(strings.Replace(good, "\n=", "\nComment: late\n=", 1)), Cleartext, Cleartext},
		{"not base64", pgpMIME("-----BEGIN PGP MESSAGE-----\n\nDefinitely not base64 encoded PGP message content.\n-----END PGP MESSAGE-----"), Cleartext, Cleartext},
		{"padding inside the data", pgpMIME(strings.Replace(good, "\n=", "=\n=", 1)), Cleartext, Cleartext},
		{"base64 of text", pgpMIME(armored([]byte("Delta Chat is a decentralized and secure messenger app."))), Cleartext, Cleartext},
		{"armor with no data", pgpMIME("-----BEGIN PGP MESSAGE-----\n\n=AAAA\n-----END PGP MESSAGE-----"), Cleartext, Cleartext},
		{"armor with nothing inside", pgpMIME("-----BEGIN PGP MESSAGE-----\n-----END PGP MESSAGE-----"), Cleartext, Cleartext},

		// §6.1 packets.
		{"SKESK then SEIPD", pgpMIME(armorWith(cat(pkt(tagSKESK, filler(60)), pkt(tagSEIPD, filler(300))))), Encrypted, Encrypted},
		{"SEIPD alone", pgpMIME(armorWith(pkt(tagSEIPD, filler(300)))), Encrypted, Encrypted},
		{"many session keys", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(tagSKESK, filler(60)), pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(300))))), Encrypted, Encrypted},
		{"two-octet length", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(5000))))), Encrypted, Encrypted},
		{"five-octet length", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(9000))))), Encrypted, Encrypted},
		{"partial lengths", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pktPartial(tagSEIPD, filler(3000), 9)))), Encrypted, Encrypted},
		{"SEIPD with an empty body", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(tagSEIPD, nil)))), Encrypted, Encrypted},
		{"session key alone", pgpMIME(armorWith(pkt(tagPKESK, filler(94)))), Cleartext, Cleartext},
		{"SEIPD then a session key", pgpMIME(armorWith(cat(pkt(tagSEIPD, filler(300)), pkt(tagPKESK, filler(94))))), Cleartext, Cleartext},
		{"two SEIPD packets", pgpMIME(armorWith(cat(pkt(tagSEIPD, filler(300)), pkt(tagSEIPD, filler(300))))), Cleartext, Cleartext},
		{"literal data, i.e. not encrypted", pgpMIME(armorWith(pkt(11, filler(300)))), Cleartext, Cleartext},
		{"signed literal data", pgpMIME(armorWith(cat(pkt(4, filler(13)), pkt(11, filler(300)), pkt(2, filler(100))))), Cleartext, Cleartext},
		{"compressed data", pgpMIME(armorWith(pkt(8, filler(300)))), Cleartext, Cleartext},
		{"legacy SED without integrity protection", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(9, filler(300))))), Cleartext, Cleartext},
		{"AEAD (tag 20) packet", pgpMIME(armorWith(cat(pkt(tagPKESK, filler(94)), pkt(20, filler(300))))), Cleartext, Cleartext},
		{"marker packet first", pgpMIME(armorWith(cat(pkt(10, []byte("PGP")), pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(300))))), Cleartext, Cleartext},
		{"legacy-format session key", pgpMIME(armorWith(cat([]byte{0x84, 94}, filler(94), pkt(tagSEIPD, filler(300))))), Cleartext, Cleartext},
		{"trailing octet after SEIPD", pgpMIME(armorWith(cat(typical(), []byte{0}))), Cleartext, Cleartext},
		{"SEIPD truncated", pgpMIME(armorWith(typical()[:len(typical())-1])), Cleartext, Cleartext},

		// §6.1 Secure-Join exception.
		{"vc-request", secureJoin("vc-request", "Secure-Join: vc-request"), SecureJoinRequest, SecureJoinRequest},
		{"vg-request", secureJoin("vg-request", "Secure-Join: vg-request"), SecureJoinRequest, SecureJoinRequest},
		{"request line in any case, padded", secureJoin("vc-request", "\n  SECURE-JOIN: VC-Request  \n"), SecureJoinRequest, SecureJoinRequest},
		{"field and line disagree", secureJoin("vc-request", "secure-join: vg-request"), SecureJoinRequest, SecureJoinRequest},
		{"folded field", secureJoin("\n vc-request", "secure-join: vc-request"), SecureJoinRequest, SecureJoinRequest},
		{"field in upper case", secureJoin("VC-REQUEST", "secure-join: vc-request"), Cleartext, Cleartext},
		{"v3 vc-request-pubkey", secureJoin("vc-request-pubkey", "secure-join: vc-request-pubkey"), Cleartext, Cleartext},
		{"later step vc-auth-required", secureJoin("vc-auth-required", "secure-join: vc-auth-required"), Cleartext, Cleartext},
		{"first field counts", bytes.Replace(secureJoin("vc-auth-required", "secure-join: vc-request"), []byte("Chat-Version"), []byte("Secure-Join: vc-request\r\nChat-Version"), 1), Cleartext, Cleartext},
		{"second field ignored", bytes.Replace(secureJoin("vc-request", "secure-join: vc-request"), []byte("Chat-Version"), []byte("Secure-Join: vc-auth-required\r\nChat-Version"), 1), SecureJoinRequest, SecureJoinRequest},
		{"extra text in the body", secureJoin("vc-request", "secure-join: vc-request\nhello bob"), Cleartext, Cleartext},
		{"long s for s", secureJoin("vc-request", "\u017fecure-join: vc-request"), Cleartext, Cleartext},
		{"base64 body", bytes.Replace(secureJoin("vc-request", base64.StdEncoding.EncodeToString([]byte("Secure-Join: vc-request\r\n"))), []byte("charset=\"utf-8\""), []byte("charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64"), 1), SecureJoinRequest, SecureJoinRequest},
		{"no field", crlf("Content-Type: multipart/mixed; boundary=SJ\n\n--SJ\nContent-Type: text/plain\n\nsecure-join: vc-request\n--SJ--\n"), Cleartext, Cleartext},
		{"not multipart", crlf("Secure-Join: vc-request\nContent-Type: text/plain\n\nsecure-join: vc-request\n"), Cleartext, Cleartext},
		{"html part", crlf("Secure-Join: vc-request\nContent-Type: multipart/mixed; boundary=SJ\n\n--SJ\nContent-Type: text/html\n\nsecure-join: vc-request\n--SJ--\n"), Cleartext, Cleartext},
		{"untyped part is text/plain", crlf("Secure-Join: vc-request\nContent-Type: multipart/mixed; boundary=SJ\n\n--SJ\n\nsecure-join: vc-request\n--SJ--\n"), SecureJoinRequest, SecureJoinRequest},
		{"two parts", crlf("Secure-Join: vc-request\nContent-Type: multipart/mixed; boundary=SJ\n\n--SJ\nContent-Type: text/plain\n\nsecure-join: vc-request\n--SJ\nContent-Type: text/plain\n\nhello\n--SJ--\n"), Cleartext, Cleartext},
		{"nested multipart", crlf("Secure-Join: vc-request\nContent-Type: multipart/mixed; boundary=SJ\n\n--SJ\nContent-Type: multipart/alternative; boundary=X\n\n--X\nContent-Type: text/plain\n\nsecure-join: vc-request\n--X--\n--SJ--\n"), Cleartext, Cleartext},

		// Anything else.
		{"empty", nil, Cleartext, Cleartext},
		{"header only", crlf("From: <a@b.example>\nSubject: hi\n"), Cleartext, Cleartext},
		{"plain text", crlf("From: <a@b.example>\nContent-Type: text/plain\n\nhello\n"), Cleartext, Cleartext},
		{"binary junk", filler(4096), Cleartext, Cleartext},
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range classifyCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.msg, Incoming); got != tt.in {
				t.Errorf("Classify(incoming) = %v, want %v; why: %s", got, tt.in, why(tt.msg, Incoming))
			}
			if got := Classify(tt.msg, Outgoing); got != tt.out {
				t.Errorf("Classify(outgoing) = %v, want %v; why: %s", got, tt.out, why(tt.msg, Outgoing))
			}
		})
	}
}

func why(msg []byte, dir Direction) string {
	_, w := parse(msg).encrypted(dir)
	return w
}

// TestClassifyWhy pins the log detail for the failures an operator is most likely to
// meet.
func TestClassifyWhy(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		dir  Direction
		want string
	}{
		{"plain", crlf("Content-Type: text/plain\n\nhi\n"), Incoming, "not multipart/encrypted"},
		{"gnupg", fixture(t, "gnupg-old-format.eml"), Incoming, "packet header is not in OpenPGP (new) format"},
		{"armor headers", pgpMIME(armored(typical(), "Version: 1")), Outgoing, "outgoing armor has header lines"},
		{"session key alone", pgpMIME(armored(pkt(tagPKESK, filler(94)))), Incoming, "last packet is not SEIPD (tag 18)"},
		{"wrong part", encMsg(encType, versionPart, "Content-Type: text/plain\n\nx"), Incoming, "part 2 is not application/octet-stream"},
	}
	for _, tt := range tests {
		if got := why(tt.msg, tt.dir); got != tt.want {
			t.Errorf("%s: why = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCheckPackets(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want string
	}{
		{"typical", typical(), ""},
		{"empty", nil, "armor holds no packets"},
		{"one-octet length boundary", pkt(tagSEIPD, filler(191)), ""},
		{"two-octet length boundary", pkt(tagSEIPD, filler(192)), ""},
		{"two-octet length top", pkt(tagSEIPD, filler(8383)), ""},
		{"five-octet length", pkt(tagSEIPD, filler(8384)), ""},
		{"partial lengths of 512", pktPartial(tagSEIPD, filler(2000), 9), ""},
		{"partial lengths ending in an empty chunk", append([]byte{0xC0 | tagSEIPD, 224 + 9}, append(filler(512), 0)...), ""},
		{"bit 7 clear", []byte{0x12, 0}, "packet header is not in OpenPGP (new) format"},
		{"legacy format", []byte{0x80 | tagPKESK<<2, 0}, "packet header is not in OpenPGP (new) format"},
		{"no length", []byte{0xC0 | tagSEIPD}, "packet header is truncated"},
		{"two-octet length cut", []byte{0xC0 | tagSEIPD, 200}, "packet header is truncated"},
		{"five-octet length cut", []byte{0xC0 | tagSEIPD, 255, 0, 0, 1}, "packet header is truncated"},
		{"length past the end", []byte{0xC0 | tagSEIPD, 5, 1, 2}, "packet body is truncated"},
		{"five-octet length past the end", []byte{0xC0 | tagSEIPD, 255, 0xFF, 0xFF, 0xFF, 0xFF, 1}, "packet body is truncated"},
		{"partial chunk past the end", []byte{0xC0 | tagSEIPD, 224 + 30, 1}, "packet body is truncated"},
		{"partial chunk with no final length", append([]byte{0xC0 | tagSEIPD, 224 + 9}, filler(512)...), "packet header is truncated"},
		{"session key alone", pkt(tagPKESK, filler(94)), "last packet is not SEIPD (tag 18)"},
		{"signature before SEIPD", cat(pkt(2, filler(10)), pkt(tagSEIPD, filler(10))), "a packet before the last is not PKESK or SKESK (tags 1, 3)"},
	}
	for _, tt := range tests {
		if got := checkPackets(tt.p); got != tt.want {
			t.Errorf("%s: checkPackets = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestClassifyLarge feeds messages near the 30 MiB limit, valid and hostile, to show
// the work stays linear: a quadratic scan would not finish.
func TestClassifyLarge(t *testing.T) {
	big := pgpMIME(armored(cat(pkt(tagPKESK, filler(94)), pkt(tagSEIPD, filler(20<<20)))))
	if got := Classify(big, Outgoing); got != Encrypted {
		t.Errorf("20 MiB encrypted message: %v; why: %s", got, why(big, Outgoing))
	}
	hostile := map[string][]byte{
		"boundary inside every line": crlf("Content-Type: " + encType + "\n\n" + strings.Repeat("x--B", 4<<20)),
		"empty parts":                crlf("Content-Type: " + encType + "\n\n" + strings.Repeat("--B\n", 4<<20)),
		"folded header":              crlf("Content-Type: multipart/encrypted;\n" + strings.Repeat(" x\n", 4<<20) + "\n"),
		"secure-join with many parts": crlf("Secure-Join: vc-request\nContent-Type: multipart/mixed; boundary=B\n\n" +
			strings.Repeat("--B\n\nsecure-join: vc-request\n", 1<<20)),
		"armor of empty lines": pgpMIME("-----BEGIN PGP MESSAGE-----\n" + strings.Repeat("\n", 8<<20) + "-----END PGP MESSAGE-----"),
	}
	for name, msg := range hostile {
		if got := Classify(msg, Incoming); got != Cleartext {
			t.Errorf("%s: %v", name, got)
		}
	}
}

func BenchmarkClassify4K(b *testing.B) {
	msg := fixture(b, "encrypted.eml")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if Classify(msg, Outgoing) != Encrypted {
			b.Fatal("not encrypted")
		}
	}
}
