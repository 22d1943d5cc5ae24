package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// EncryptedMessage is a real PGP/MIME message (package coi/e2ee's test data, made
// with GnuPG and laid out as Delta Chat sends mail) with its From, To and Subject
// replaced and an X-Mailer field added: what chatmail domains accept as encrypted.
func EncryptedMessage(t testing.TB, from, to, subject string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "coi", "e2ee", "testdata", "encrypted.eml"))
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	head, body, _ := bytes.Cut(raw, []byte("\n\n"))
	var out bytes.Buffer
	fmt.Fprintf(&out, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nX-Mailer: e2e-test-mailer\r\n", from, to, subject)
	for _, line := range strings.Split(string(head), "\n") {
		if strings.HasPrefix(line, "From:") || strings.HasPrefix(line, "To:") || strings.HasPrefix(line, "Subject:") {
			continue
		}
		out.WriteString(line + "\r\n")
	}
	out.WriteString("\r\n")
	out.Write(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	return out.Bytes()
}
