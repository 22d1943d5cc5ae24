package wire

import "testing"

func TestMUTF7(t *testing.T) {
	tests := []struct {
		utf8, mutf7 string
	}{
		{"INBOX", "INBOX"},
		{"A&B", "A&-B"},
		{"日本語", "&ZeVnLIqe-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"Grüße", "Gr&APwA3w-e"},
		{"😀", "&2D3eAA-"},
		{"tab\there", "tab&AAk-here"},
	}
	for _, tt := range tests {
		if got := EncodeMUTF7(tt.utf8); got != tt.mutf7 {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", tt.utf8, got, tt.mutf7)
		}
		if got, err := DecodeMUTF7(tt.mutf7); err != nil || got != tt.utf8 {
			t.Errorf("DecodeMUTF7(%q) = %q, %v; want %q", tt.mutf7, got, err, tt.utf8)
		}
	}
	for _, bad := range []string{
		"&Jjo",     // unterminated
		"&AGE-",    // "a" encoded: not canonical
		"&2D0-",    // lone high surrogate
		"&3gA-",    // lone low surrogate
		"&Jj!-",    // not base64
		"&AP-",     // odd number of bytes
		"\xff&-",   // invalid UTF-8
		"&AP/-",    // "/" is not modified base64
		"&2D3YPQ-", // high surrogate followed by high surrogate
	} {
		if got, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("DecodeMUTF7(%q) = %q, want error", bad, got)
		}
	}
}
