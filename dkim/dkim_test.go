package dkim

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
)

const testMsg = "From: Alice <alice@a.test>\r\n" +
	"To: bob@b.test\r\n" +
	"Subject: hello\r\n" +
	"Date: Tue, 14 Jul 2026 12:00:00 +0000\r\n" +
	"Message-ID: <1@a.test>\r\n" +
	"Chat-Version: 1.0\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hi Bob,\r\n\r\nhow are you?\r\n"

// published returns keys for a.test whose records are in a fresh DNS server, and a
// resolver asking that server.
func published(t *testing.T) (*DomainKeys, *dnstest.Server, *dnsx.Resolver) {
	t.Helper()
	keys, err := newStore(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)).Ensure("a.test")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Records("a.test", keys)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.New(t)
	for _, r := range recs {
		srv.Add(r.ZoneLine())
	}
	return keys, srv, dnsx.New(srv.Addr())
}

func sign(t *testing.T, keys *DomainKeys, msg string) string {
	t.Helper()
	sigs, err := keys.Sign([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(sigs, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("Sign returned %d signatures:\n%s", n, sigs)
	}
	if !bytes.HasSuffix(sigs, []byte("\r\n")) {
		t.Fatalf("signatures do not end in CRLF: %q", sigs)
	}
	return string(sigs) + msg
}

func TestSignVerify(t *testing.T) {
	keys, srv, r := published(t)
	srv.ServFail("tmp._domainkey.a.test")
	signed := sign(t, keys, testMsg)
	bothPass := []Status{Pass, Pass}
	bothFail := []Status{Fail, Fail}

	tests := []struct {
		name string
		msg  string
		want []Status
	}{
		{"as signed", signed, bothPass},
		{"refolded header", strings.Replace(signed, "Subject: hello", "Subject:  hello \r\n\t", 1), bothPass},
		{"trailing blank lines", signed + "\r\n\r\n", bothPass},
		{"body changed", strings.Replace(signed, "how are", "who are", 1), bothFail},
		{"subject changed", strings.Replace(signed, "Subject: hello", "Subject: hellO", 1), bothFail},
		{"second From added", "From: mallory@evil.test\r\n" + signed, bothFail},
		{"Reply-To added", "Reply-To: mallory@evil.test\r\n" + signed, bothFail},
		{"List-Id added", "List-Id: <l.a.test>\r\n" + signed, bothPass},
		{"unsigned", testMsg, nil},
		{"key missing", strings.ReplaceAll(signed, "s=ed202607", "s=gone"), []Status{PermError, Pass}},
		{"dns failing", strings.ReplaceAll(signed, "s=ed202607", "s=tmp"), []Status{TempError, Pass}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Verify(t.Context(), r, []byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			var got []Status
			for _, x := range res {
				got = append(got, x.Status)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("results %+v, want %v", res, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("result %d = %+v, want %s", i, res[i], tt.want[i])
				}
				if got[i] != Pass && res[i].Reason == "" {
					t.Errorf("result %d has no reason", i)
				}
			}
		})
	}

	res, err := Verify(t.Context(), r, []byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Domain: "a.test", Selector: "ed202607", Algorithm: "ed25519-sha256", Status: Pass},
		{Domain: "a.test", Selector: "rsa202607", Algorithm: "rsa-sha256", Status: Pass},
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
}

func TestSignHeaderOnly(t *testing.T) {
	keys, _, r := published(t)
	for _, msg := range []string{"From: a@a.test\r\nSubject: x\r\n", "From: a@a.test\r\nSubject: x"} {
		res, err := Verify(t.Context(), r, []byte(sign(t, keys, msg)))
		if err != nil || len(res) != 2 || res[0].Status != Pass || res[1].Status != Pass {
			t.Errorf("%q: %+v, %v", msg, res, err)
		}
	}
}

func TestSignedHeaderKeys(t *testing.T) {
	fields, _ := headerFields([]byte(testMsg + "List-Id: x\r\n"))
	keys := strings.Join(signedHeaderKeys(fields), ":")
	for _, want := range []string{"From:From:", "Reply-To:To:To:Cc:Subject:Subject:", "Autocrypt:"} {
		if !strings.Contains(keys, want) {
			t.Errorf("h= %s lacks %s", keys, want)
		}
	}
	if strings.Contains(keys, "List-Id") {
		t.Errorf("h= %s signs List-Id, which is in the body, not the header", keys)
	}
	fields, _ = headerFields([]byte("List-Id: x\r\n" + testMsg))
	if keys := strings.Join(signedHeaderKeys(fields), ":"); strings.Count(keys, "List-Id") != 1 {
		t.Errorf("h= %s should sign the present List-Id once", keys)
	}
}

func TestVerifyCanceled(t *testing.T) {
	keys, _, r := published(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Verify(ctx, r, []byte(sign(t, keys, testMsg))); err == nil {
		t.Error("Verify with a canceled context succeeded")
	}
}

func TestKeyStoreSign(t *testing.T) {
	s := newStore(t, time.Now())
	if _, err := s.Sign(t.Context(), "a.test", []byte(testMsg)); err == nil {
		t.Error("Sign before Ensure succeeded")
	}
	if _, err := s.Ensure("a.test"); err != nil {
		t.Fatal(err)
	}
	sigs, err := s.Sign(t.Context(), "A.test", []byte(testMsg))
	if err != nil || !bytes.Contains(sigs, []byte("d=a.test;")) {
		t.Errorf("Sign = %q, %v", sigs, err)
	}
}

func TestRecords(t *testing.T) {
	keys, _, _ := published(t)
	recs, err := Records("a.test", keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Name != "ed202607._domainkey.a.test." || recs[1].Name != "rsa202607._domainkey.a.test." {
		t.Fatalf("records = %+v", recs)
	}
	if !strings.HasPrefix(recs[0].Value, "v=DKIM1; k=ed25519; p=") || len(recs[0].Value) != len("v=DKIM1; k=ed25519; p=")+44 {
		t.Errorf("ed25519 record = %q", recs[0].Value)
	}
	if !strings.HasPrefix(recs[1].Value, "v=DKIM1; k=rsa; p=MIIBIj") {
		t.Errorf("rsa record = %q", recs[1].Value)
	}
	chunks := recs[1].Strings()
	if len(chunks) < 2 || strings.Join(chunks, "") != recs[1].Value {
		t.Errorf("rsa record split into %d chunks", len(chunks))
	}
	for _, c := range chunks {
		if len(c) > 255 {
			t.Errorf("chunk of %d bytes", len(c))
		}
	}
	if line := recs[1].ZoneLine(); strings.Count(line, `"`) != 2*len(chunks) {
		t.Errorf("zone line %q", line)
	}
}

func BenchmarkSignBoth(b *testing.B) {
	s := NewKeyStore(b.TempDir())
	keys, err := s.Ensure("a.test")
	if err != nil {
		b.Fatal(err)
	}
	var msg bytes.Buffer
	msg.WriteString(testMsg[:strings.Index(testMsg, "\r\n\r\n")+4])
	for msg.Len() < 4096 {
		msg.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n")
	}
	b.SetBytes(int64(msg.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.Sign(msg.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
