package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coibox/coibox/coi/e2ee"
)

func TestPGPLength(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0}},
		{191, []byte{191}},
		{192, []byte{192, 0}},
		{1723, []byte{197, 251}}, // RFC 9580 §4.2.1.5's example: 0xC5 0xFB
		{8383, []byte{223, 255}},
		{8384, []byte{255, 0, 0, 0x20, 0xC0}},
		{100000, []byte{255, 0, 0x01, 0x86, 0xA0}}, // the RFC's example: 0xFF 0x00 0x01 0x86 0xA0
	}
	for _, tc := range tests {
		if got := pgpLength(tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("pgpLength(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
}

// readPackets walks new-format packets with fixed lengths, as the generator writes
// them, and returns their tags and body lengths.
func readPackets(t *testing.T, p []byte) (tags []byte, lens []int) {
	t.Helper()
	for i := 0; i < len(p); {
		if p[i]&0xC0 != 0xC0 {
			t.Fatalf("packet at %d: tag octet %#x is not new format", i, p[i])
		}
		tags = append(tags, p[i]&0x3F)
		i++
		var n int
		switch o := int(p[i]); {
		case o < 192:
			n, i = o, i+1
		case o < 224:
			n, i = (o-192)<<8+int(p[i+1])+192, i+2
		case o == 255:
			n, i = int(p[i+1])<<24|int(p[i+2])<<16|int(p[i+3])<<8|int(p[i+4]), i+5
		default:
			t.Fatalf("packet at %d: partial length, which the generator does not write", i)
		}
		if i+n > len(p) {
			t.Fatalf("packet at %d: body of %d runs past the end (%d)", i, n, len(p))
		}
		lens = append(lens, n)
		i += n
	}
	return tags, lens
}

// TestChatMessage checks that the generated chat messages are what the server's
// classifier takes as encrypted outgoing mail, across sizes that need each length
// encoding for the SEIPD packet, and that they have the shape the benchmark promises.
func TestChatMessage(t *testing.T) {
	from, to := "abc123xyz@"+chatDomain, "q9w8e7r6t@"+chatDomain
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		size      int
		seipdLenB int // octets of the SEIPD's length field
	}{{1200, 1}, {4000, 2}, {12_000, 2}, {100_000, 5}} {
		msg := chatMessage(rng, from, to, 7, tc.size)
		if got := e2ee.Classify(msg, e2ee.Outgoing); got != e2ee.Encrypted {
			t.Fatalf("size %d: classified %v, want %v:\n%s", tc.size, got, e2ee.Encrypted, msg)
		}
		if n := len(msg); tc.size >= 4000 && (n < tc.size*97/100 || n > tc.size*103/100) {
			t.Errorf("size %d: message is %d bytes, want within 3%%", tc.size, n)
		}
		if !wireForm(msg) {
			t.Errorf("size %d: want CRLF line ends and no line starting with a dot", tc.size)
		}
		head := string(msg[:bytes.Index(msg, []byte("\r\n\r\n"))])
		if !strings.Contains(head, "\r\nFrom: <"+from+">\r\n") && !strings.HasPrefix(head, "From: <"+from+">\r\n") {
			t.Errorf("size %d: From is not the sender:\n%s", tc.size, head)
		}
		if !strings.Contains(head, "\r\nSubject: coibench chat message 7") {
			t.Errorf("size %d: no Subject to be scrubbed:\n%s", tc.size, head)
		}

		// The armor: no header lines, lines of at most 76 characters, then the packets.
		_, armor, _ := bytes.Cut(msg, []byte("-----BEGIN PGP MESSAGE-----\r\n"))
		armor, _, _ = bytes.Cut(armor, []byte("-----END PGP MESSAGE-----"))
		if !bytes.HasPrefix(armor, []byte("\r\n")) {
			t.Fatalf("size %d: armor does not start with the empty line (an armor header?)", tc.size)
		}
		var enc []byte
		for line := range bytes.Lines(bytes.TrimSpace(armor)) {
			line = bytes.TrimRight(line, "\r\n")
			if len(line) > armorLine || bytes.IndexByte(line, ':') >= 0 {
				t.Fatalf("size %d: armor line %q", tc.size, line)
			}
			enc = append(enc, line...)
		}
		raw, err := base64.StdEncoding.DecodeString(string(enc))
		if err != nil {
			t.Fatalf("size %d: armor: %v", tc.size, err)
		}
		tags, lens := readPackets(t, raw)
		if !slices.Equal(tags, []byte{pgpTagPKESK, pgpTagSEIPD}) || lens[0] != pkeskBodyLen {
			t.Fatalf("size %d: packets %v of %v bytes, want PKESK of %d then SEIPD", tc.size, tags, lens, pkeskBodyLen)
		}
		if got := len(pgpLength(lens[1])); got != tc.seipdLenB {
			t.Errorf("size %d: SEIPD of %d bytes has a %d-octet length, want %d", tc.size, lens[1], got, tc.seipdLenB)
		}
	}
	a, b := chatMessage(rng, from, to, 1, 4000), chatMessage(rng, from, to, 1, 4000)
	if bytes.Equal(a, b) {
		t.Error("two messages alike")
	}
}

// TestChatMessageNotEncrypted keeps the unit test above honest: the same message with
// its shape broken is not encrypted to the classifier.
func TestChatMessageNotEncrypted(t *testing.T) {
	msg := chatMessage(rand.New(rand.NewPCG(3, 4)), "abc123xyz@"+chatDomain, "q9w8e7r6t@"+chatDomain, 1, 4000)
	for name, broken := range map[string][]byte{
		"armor header":   bytes.Replace(msg, []byte("-----BEGIN PGP MESSAGE-----\r\n"), []byte("-----BEGIN PGP MESSAGE-----\r\nVersion: coibench\r\n"), 1),
		"version 2":      bytes.Replace(msg, []byte("\r\nVersion: 1\r\n"), []byte("\r\nVersion: 2\r\n"), 1),
		"not encrypted":  bytes.Replace(msg, []byte("multipart/encrypted"), []byte("multipart/mixed"), 1),
		"truncated SEIP": regexp.MustCompile(`(?s)\r\n[A-Za-z0-9+/]+=*\r\n-----END`).ReplaceAll(msg, []byte("\r\n-----END")),
	} {
		if bytes.Equal(broken, msg) {
			t.Fatalf("%s: the message did not change", name)
		}
		if got := e2ee.Classify(broken, e2ee.Outgoing); got == e2ee.Encrypted {
			t.Errorf("%s: still classified encrypted", name)
		}
	}
}

func TestNewChatAccounts(t *testing.T) {
	accounts := newChatAccounts(200)
	local := regexp.MustCompile(`^[a-z0-9]{9}@` + regexp.QuoteMeta(chatDomain) + `$`)
	seen := map[string]bool{}
	for _, a := range accounts {
		if !local.MatchString(a.user) || len(a.password) < 12 || seen[a.user] {
			t.Errorf("account %q password %q: want a new 9-character [a-z0-9] local part and 12+ characters", a.user, a.password)
		}
		seen[a.user] = true
	}
}

func TestChatUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{args: []string{"chat", "-h"}, wantCode: 0, wantErr: "-logins"},
		{args: []string{"chat", "-logins", "1"}, wantCode: 2, wantErr: "-logins at least 2"},
		{args: []string{"chat", "-size", "big"}, wantCode: 2, wantErr: "-size must be a size"},
		{args: []string{"chat", "more"}, wantCode: 2, wantErr: "unexpected argument"},
		{args: []string{"chat", "-mxdeliv-http", "3"}, wantCode: 2, wantErr: "-mxdeliv-http 2 or 1.1"},
		{args: []string{"chat", "-dkim", "dsa"}, wantCode: 2, wantErr: "-dkim ed25519 or rsa"},
		{args: []string{"chat", "-ingest-conc", "0"}, wantCode: 2, wantErr: "-ingest-conc"},
		{args: []string{"chat", "-ingest-rounds", "0"}, wantCode: 2, wantErr: "-ingest-rounds"},
		{args: []string{"chat", "-conns", "-1"}, wantCode: 2, wantErr: "-conns must not be negative"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
			t.Errorf("coibench %v: code %d, stderr %q; want code %d and %q", tc.args, code, errb.String(), tc.wantCode, tc.wantErr)
		}
	}
}

// TestChatSmoke runs a tiny benchmark against a freshly built server and checks that
// every figure is there and holds together, in the JSON and in the table.
func TestChatSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts coibox")
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"chat", "-logins", "5", "-messages", "5", "-ingest", "20", "-ingest-conc", "4", "-ingest-rounds", "2",
		"-mx-messages", "5", "-conns", "30", "-conns-per-account", "10", "-json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, errb.String())
	}
	var rep chatReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if rep.ServerPID == 0 || rep.Domain != chatDomain || rep.Target == "" || rep.Submissions == "" {
		t.Fatalf("report: pid %d, domain %q, targets %q %q", rep.ServerPID, rep.Domain, rep.Target, rep.Submissions)
	}
	l := rep.FirstLogins
	if l == nil || l.Logins != 5 || l.Succeeded != 5 || l.FirstError != "" {
		t.Fatalf("first logins: %+v; want 5 of 5", l)
	}
	if !(0 < l.LoginP50Ms && l.LoginP50Ms <= l.LoginP99Ms && l.LoginP99Ms <= l.LoginMaxMs) ||
		!(0 < l.DialLoginP50Ms && l.DialLoginP50Ms <= l.DialLoginP99Ms && l.DialLoginP99Ms <= l.DialLoginMaxMs) ||
		l.DialLoginMaxMs < l.LoginMaxMs || l.WallMs < l.DialLoginMaxMs {
		t.Errorf("first logins: %+v; want 0 < p50 ≤ p99 ≤ max, the dial included ≥ the LOGIN alone, all within the phase", l)
	}
	if l.RSSBefore <= 0 || l.PeakRSS < l.RSSBefore/2 || l.PeakRSS > 4<<30 {
		t.Errorf("memory: %d before, peak %d", l.RSSBefore, l.PeakRSS)
	}
	c := rep.Latency
	if c == nil || c.Samples != 5 || c.Fetched != 5 || c.Scrubbed != 5 || c.MessageBytes < 3800 || c.MessageBytes > 4200 {
		t.Fatalf("chat latency: %+v; want 5 samples, 5 fetched and scrubbed, 4 KB messages", c)
	}
	if !(0 <= c.MedianMs && c.MedianMs <= c.P99Ms && c.P99Ms <= c.MaxMs && c.MaxMs < 60_000) {
		t.Errorf("chat latency: %+v; want 0 ≤ median ≤ p99 ≤ max", c)
	}
	// The dot is written before the 250 is read, so each sample is longer from there.
	if !(0 < c.DotMedianMs && c.DotMedianMs <= c.DotP99Ms && c.DotP99Ms <= c.DotMaxMs) || c.DotMedianMs < c.MedianMs || c.DotMaxMs < c.MaxMs {
		t.Errorf("chat latency from the dot: %+v; want 0 < median ≤ p99 ≤ max, each at least its figure from the 250", c)
	}
	in := rep.Ingest
	if in == nil || in.Messages != 20 || in.Concurrency != 4 || in.DKIM != "ed25519" || in.PeerDomain != peerDomain || in.Recipients != 3 {
		t.Fatalf("ingest: %+v", in)
	}
	if len(in.Origin) != 3 {
		t.Errorf("origin checks: %+v; want 3", in.Origin)
	}
	for _, c := range in.Origin {
		if !c.Refused {
			t.Errorf("origin check %q accepted: %s", c.What, c.Reply)
		}
	}
	for _, r := range []chatIngestRun{in.SMTP, in.MXDeliv} {
		if r.Sent != 20 || r.Acked != 20 || r.Stored != 20 || !r.StoredOK || r.PerSecond <= 0 || r.Connections < 1 || r.ServerCPUPerMsgMs <= 0 ||
			!(0 < r.P50Ms && r.P50Ms <= r.P99Ms) {
			t.Errorf("ingest %s: %+v; want 20 acknowledged and stored, with figures", r.Path, r)
		}
	}
	// Each round opens its own connections: up to 4 SMTP ones, and HTTP/2 needs one.
	if in.Rounds != 2 || in.SMTP.Path != "smtp" || in.SMTP.Connections < 2 || in.SMTP.Connections > 8 ||
		in.MXDeliv.Path != "mxdeliv" || in.MXDeliv.Protocol != "HTTP/2.0" || in.MXDeliv.Connections != 2 {
		t.Errorf("ingest: %d rounds, %s over %d connections, %s %s over %d; want 2 rounds, smtp over 2 to 8, mxdeliv HTTP/2.0 over 2",
			in.Rounds, in.SMTP.Path, in.SMTP.Connections, in.MXDeliv.Path, in.MXDeliv.Protocol, in.MXDeliv.Connections)
	}
	if want := in.MXDeliv.PerSecond / in.SMTP.PerSecond; in.Ratio != want {
		t.Errorf("ratio %v, want %v", in.Ratio, want)
	}
	x := rep.MXLatency
	if x == nil || x.Samples != 5 || x.Protocol != "HTTP/2.0" || x.MessageBytes < 3800 || x.MessageBytes > 4200 {
		t.Fatalf("mxdeliv latency: %+v", x)
	}
	if !(0 <= x.MedianMs && x.MedianMs <= x.P99Ms && x.P99Ms <= x.MaxMs) || !(0 < x.ReqMedianMs && x.ReqMedianMs <= x.ReqP99Ms && x.ReqP99Ms <= x.ReqMaxMs) ||
		x.ReqMaxMs < x.MaxMs || x.RoundTripMedianMs <= 0 {
		t.Errorf("mxdeliv latency: %+v; want 0 ≤ median ≤ p99 ≤ max, from the request at least from the 200", x)
	}
	ic := rep.IdleConns
	if ic == nil || ic.Conns != 30 || ic.Opened != 30 || ic.Accounts != 3 || ic.PerAccount != 10 || ic.FirstError != "" || ic.ServerPID == 0 || ic.ServerPID == rep.ServerPID {
		t.Fatalf("idle conns: %+v; want 30 open on 3 accounts of a restarted server", ic)
	}
	if ic.FDsAfter-ic.FDsBefore < 30 || ic.RSSBefore <= 0 || ic.RSSAfter <= 0 {
		t.Errorf("idle conns: %+v; want 30 more open files and RSS figures", ic)
	}
	if len(rep.Targets) != 8 || !rep.Targets[0].Met {
		t.Errorf("targets: %+v; want 8, all logins met", rep.Targets)
	}

	var table bytes.Buffer
	if err := printChatTable(&table, &rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5 succeeded", "LOGIN to tagged OK", "TLS dial + LOGIN", "peak", "5 encrypted messages",
		"5 with Subject: [...]", "final dot", "first logins (new accounts) that succeeded, 5 at once", "median",
		"origin check, port 25 without STARTTLS", "in 2 rounds alternating the paths", "port 25  ESMTP, STARTTLS, pipelined", "/mxdeliv ÷ port 25", "HTTP/2.0",
		"5 encrypted, DKIM-signed messages", "30 of 30 connections on 3 chatmail accounts", "server RSS per idling chatmail connection, 30 open"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
