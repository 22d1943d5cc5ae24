package config

import "testing"

// FuzzLoad feeds arbitrary files through the parse and validate path: it must never
// panic, and whatever it accepts must stay valid when validated again, since callers
// re-run Validate after changing a loaded Config.
func FuzzLoad(f *testing.F) {
	f.Add(localProfile)
	f.Add([]byte("hostname = \"mail.example.org\"\n[limits]\nmessage_size = \"1GiB\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation again: %v\n%s", err, data)
		}
	})
}
