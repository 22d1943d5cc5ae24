package coiext

import "testing"

// The table of coi spec §6.
func TestIsChat(t *testing.T) {
	for _, tc := range []struct {
		header string
		chat   bool
		group  string
	}{
		{"Chat-Version: 1.0\r\nMessage-ID: <3f2a@localhost>\r\n", true, ""},
		{"Chat-Version:\r\nMessage-ID: <3f2a@localhost>\r\n", true, ""},
		{"Message-ID: <chat$a1b2.c3@ex.org>\r\n", true, ""},
		{"Message-ID: <x@ex.org>\r\nReferences: <chat$group.Gr0up1d_xyz.9@ex.org> <y@ex.org>\r\n", true, "Gr0up1d_xyz"},
		{"Message-ID: <chat$group.abc.1@ex.org>\r\n", true, "abc"},
		{"References: <y@ex.org> <chat$1@ex.org>\r\n", false, ""},
		{"In-Reply-To: <chat$1@ex.org>\r\n", false, ""},
		{"Message-ID: <Chat$1@ex.org>\r\n", false, ""},
		{"Subject: hello\r\n", false, ""},
		{"garbage without a colon\r\n", false, ""},
	} {
		msg := []byte(tc.header + "\r\nbody\r\n")
		if got := IsChat(msg); got != tc.chat {
			t.Errorf("IsChat(%q) = %v, want %v", tc.header, got, tc.chat)
		}
		if tc.chat {
			if got := GroupID(msg); got != tc.group {
				t.Errorf("GroupID(%q) = %q, want %q", tc.header, got, tc.group)
			}
		}
	}
}

func FuzzIsChat(f *testing.F) {
	f.Add([]byte("Chat-Version: 1.0\r\n\r\n"))
	f.Add([]byte("Message-ID: <chat$group.x.y@z>\r\nReferences: <a>\r\n\r\nb"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = IsChat(msg)
		_ = GroupID(msg)
	})
}
