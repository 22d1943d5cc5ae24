package profile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/config"
)

// TestDefaults pins the §1 table: every chatmail and ordinary default, as listed.
func TestDefaults(t *testing.T) {
	want := map[string][2]string{ // key: chatmail, ordinary
		"chatmail":                    {"on", "off"},
		"registration":                {"open", "closed"},
		"localpart_len":               {"9..9", "unset"},
		"password_min":                {"9", "unset"},
		"enforce_e2ee_outgoing":       {"on", "off"},
		"enforce_e2ee_incoming":       {"on", "off"},
		"inbound_dkim_required":       {"on", "off"},
		"scrub_headers":               {"on", "off"},
		"send_rate":                   {"60/min,burst=10", "default"},
		"max_mailbox_size":            {"500MiB", "default"},
		"trim_mailbox":                {"on", "off"},
		"delete_mails_after":          {"20d", "off"},
		"delete_large_after":          {"7d", "off"},
		"delete_inactive_users_after": {"90d", "off"},
		"max_message_size":            {"30MiB", "default"},
		"queue_lifetime":              {"2d", "5d"},
		"push":                        {"on", "off"},
		"xchatmail":                   {"on", "off"},
		"admin_contact":               {"unset", "unset"},
		"iroh_relay":                  {"unset", "unset"},
		"turn":                        {"embedded:3478", "off"},
		"turn_secret":                 {"unset", "unset"},
		"resource_guard":              {"load1=5,ram=200MiB,disk=1GiB", "off"},
	}
	for i, p := range []Profile{Chatmail(), Ordinary()} {
		if err := p.Validate(); err != nil {
			t.Errorf("defaults %d invalid: %v", i, err)
		}
		got := map[string]bool{}
		for _, s := range p.Settings() {
			got[s.Key] = true
			w, ok := want[s.Key]
			if !ok {
				t.Errorf("unexpected key %s", s.Key)
				continue
			}
			if s.Value != w[i] {
				t.Errorf("%s default %d = %q, want %q", s.Key, i, s.Value, w[i])
			}
			if s.Doc == "" {
				t.Errorf("%s has no doc", s.Key)
			}
		}
		if len(got) != len(want) {
			t.Errorf("listing has %d keys, want %d", len(got), len(want))
		}
	}
	if c := Chatmail(); c.MaxMessageSize != 31457280 || c.SendRate != (Rate{60, time.Minute, 10}) || c.DeleteMailsAfter != 480*time.Hour {
		t.Errorf("chatmail values: %+v", c)
	}
	if !reflect.DeepEqual(Default(true), Chatmail()) || !reflect.DeepEqual(Default(false), Ordinary()) {
		t.Error("Default disagrees with Chatmail/Ordinary")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		key, value string
		check      func(Profile) bool // on Chatmail() with the change applied
		err        string             // substring of the error; "" means success
	}{
		{"chatmail", "off", func(p Profile) bool { return !p.Chatmail }, "xchatmail: must stay off unless chatmail=on"},
		{"push", "off", func(p Profile) bool { return !p.Push }, ""},
		{"push", "NO", func(p Profile) bool { return !p.Push }, ""},
		{"Push", "true", func(p Profile) bool { return p.Push }, ""},
		{"push", "maybe", nil, `set push: "maybe" is not on or off`},
		{"registration", "closed", func(p Profile) bool { return p.Registration == Closed }, ""},
		{"registration", "Open", func(p Profile) bool { return p.Registration == Open }, ""},
		{"registration", "invite", nil, `set registration: "invite" is neither open nor closed`},
		{"localpart_len", "6..12", func(p Profile) bool { return p.LocalpartLen == Range{6, 12} }, ""},
		{"localpart_len", "12", func(p Profile) bool { return p.LocalpartLen == Range{12, 12} }, ""},
		{"localpart_len", "12..6", nil, `set localpart_len: "12..6" has its minimum above its maximum`},
		{"localpart_len", "0..9", nil, `set localpart_len: "0..9" is outside 1..64`},
		{"localpart_len", "9..65", nil, `outside 1..64`},
		{"localpart_len", "nine", nil, `set localpart_len: "nine" is not a length range: write MIN..MAX`},
		{"localpart_len", "unset", nil, "localpart_len: must be set when registration=open"},
		{"password_min", "12", func(p Profile) bool { return p.PasswordMin == 12 }, ""},
		{"password_min", "0", nil, `set password_min: "0" is not a whole number from 1 to 128`},
		{"password_min", "unset", nil, "password_min: must be set when registration=open"},
		{"enforce_e2ee_outgoing", "off", func(p Profile) bool { return !p.EnforceE2EEOutgoing }, ""},
		{"enforce_e2ee_incoming", "off", func(p Profile) bool { return !p.EnforceE2EEIncoming }, ""},
		{"inbound_dkim_required", "off", func(p Profile) bool { return !p.InboundDKIMRequired }, ""},
		{"scrub_headers", "off", func(p Profile) bool { return !p.ScrubHeaders }, ""},
		{"send_rate", "120/min,burst=20", func(p Profile) bool { return p.SendRate == Rate{120, time.Minute, 20} }, ""},
		{"send_rate", "1000/d", func(p Profile) bool { return p.SendRate == Rate{1000, 24 * time.Hour, 1} }, ""},
		{"send_rate", " 5 / s , burst = 3 ", func(p Profile) bool { return p.SendRate == Rate{5, time.Second, 3} }, ""},
		{"send_rate", "default", func(p Profile) bool { return p.SendRate == Rate{} }, ""},
		{"send_rate", "60/hour", nil, `set send_rate: "60/hour" is not a rate: the unit must be s, min, h or d; write e.g. 60/min,burst=10, or default`},
		{"send_rate", "60", nil, `"60" is not a rate: it needs a /`},
		{"send_rate", "0/min", nil, "the count must be a whole number"},
		{"send_rate", "60/min,10", nil, "after the comma comes burst=N"},
		{"max_mailbox_size", "1GiB", func(p Profile) bool { return p.MaxMailboxSize == config.GiB }, ""},
		{"max_mailbox_size", "default", nil, "trim_mailbox: needs max_mailbox_size"},
		{"max_mailbox_size", "0", nil, `set max_mailbox_size: "0" is not a limit: write default`},
		{"max_mailbox_size", "lots", nil, `set max_mailbox_size: "lots" is not a size`},
		{"trim_mailbox", "off", func(p Profile) bool { return !p.TrimMailbox }, ""},
		{"delete_mails_after", "30d", func(p Profile) bool { return p.DeleteMailsAfter == 720*time.Hour }, ""},
		{"delete_mails_after", "36h", func(p Profile) bool { return p.DeleteMailsAfter == 36*time.Hour }, ""},
		{"delete_mails_after", "off", func(p Profile) bool { return p.DeleteMailsAfter == 0 }, ""},
		{"delete_mails_after", "0", func(p Profile) bool { return p.DeleteMailsAfter == 0 }, ""},
		{"delete_mails_after", "20", nil, `set delete_mails_after: "20" has no unit: write e.g. 2d or 36h, or off`},
		{"delete_mails_after", "1.5d", nil, `"1.5d" is not a whole number of days`},
		{"delete_mails_after", "-3h", nil, `"-3h" is not a positive duration`},
		{"delete_large_after", "14d", func(p Profile) bool { return p.DeleteLargeAfter == 14*24*time.Hour }, ""},
		{"delete_inactive_users_after", "off", func(p Profile) bool { return p.DeleteInactiveUsersAfter == 0 }, ""},
		{"delete_inactive_users_after", "99999d", nil, "from 1 to 36500"},
		{"max_message_size", "10MB", func(p Profile) bool { return p.MaxMessageSize == 10*config.MB }, ""},
		{"max_message_size", "default", func(p Profile) bool { return p.MaxMessageSize == 0 }, ""},
		{"queue_lifetime", "5d", func(p Profile) bool { return p.QueueLifetime == 120*time.Hour }, ""},
		{"queue_lifetime", "off", nil, `set queue_lifetime: this cannot be off: write e.g. 2d or 36h`},
		{"queue_lifetime", "0", nil, `"0" is not a positive duration: write e.g. 2d or 36h`},
		{"queue_lifetime", "", nil, "set queue_lifetime: the value is empty"},
		{"xchatmail", "off", func(p Profile) bool { return !p.XChatmail }, ""},
		{"admin_contact", "admin@chat.example", func(p Profile) bool { return p.AdminContact == "admin@chat.example" }, ""},
		{"admin_contact", "mailto:admin@chat.example", func(p Profile) bool { return p.AdminContact == "admin@chat.example" }, ""},
		{"admin_contact", "Admin <admin@chat.example>", nil, `set admin_contact: "Admin <admin@chat.example>" is not a bare email address`},
		{"admin_contact", "admin", nil, "is not a bare email address"},
		{"admin_contact", "unset", func(p Profile) bool { return p.AdminContact == "" }, ""},
		{"admin_contact", "", func(p Profile) bool { return p.AdminContact == "" }, ""},
		{"iroh_relay", "https://iroh.chat.example/", func(p Profile) bool { return p.IrohRelay == "https://iroh.chat.example/" }, ""},
		{"iroh_relay", "http://iroh.chat.example/", nil, `set iroh_relay: "http://iroh.chat.example/" is not an https URL`},
		{"iroh_relay", "https://", nil, "is not an https URL"},
		{"turn", "off", func(p Profile) bool { return p.TURN.Mode == TURNOff }, ""},
		{"turn", "embedded", func(p Profile) bool { return p.TURN == TURN{Mode: TURNEmbedded, Port: 3478} }, ""},
		{"turn", "embedded:5349", func(p Profile) bool { return p.TURN == TURN{Mode: TURNEmbedded, Port: 5349} }, ""},
		{"turn", "embedded:0", nil, `set turn: "embedded:0": port "0" is not from 1 to 65535`},
		{"turn", "turn.example.org:3478", nil, "turn_secret: must be set for an external turn server"},
		{"turn", "turn.example.org", nil, `set turn: "turn.example.org" is not a TURN server: write off, embedded`},
		{"turn", ":3478", nil, "is not a TURN server"},
		{"turn_secret", "s3cret", func(p Profile) bool { return p.TURN.Secret == "s3cret" }, ""},
		{"resource_guard", "off", func(p Profile) bool { return p.ResourceGuard == ResourceGuard{} }, ""},
		{"resource_guard", "load1=2.5", func(p Profile) bool { return p.ResourceGuard == ResourceGuard{MaxLoad1: 2.5} }, ""},
		{"resource_guard", "disk=10GiB, ram=1GiB", func(p Profile) bool {
			return p.ResourceGuard == ResourceGuard{MinFreeRAM: config.GiB, MinFreeDisk: 10 * config.GiB}
		}, ""},
		{"resource_guard", "load1=-1", nil, `set resource_guard: "load1=-1" is not a resource guard: load1 must be a positive number`},
		{"resource_guard", "load1=NaN", nil, "load1 must be a positive number"},
		{"resource_guard", "ram=0", nil, "ram must be a size above zero"},
		{"resource_guard", "cpu=4", nil, `"cpu" is not load1, ram or disk`},
		{"resource_guard", "load1=1,load1=2", nil, "load1 is given twice"},
		{"resource_guard", "load1", nil, `"load1" is not name=value`},
		{"send-rate", "10/s", func(p Profile) bool { return p.SendRate == Rate{10, time.Second, 1} }, ""},
		{"sendrate", "10/s", nil, "set sendrate: unknown setting; the settings are chatmail, registration, localpart_len"},
		{"push", "on\x00", nil, "set push: the value has control characters or is not UTF-8"},
		{"turn_secret", "\xff", nil, "not UTF-8"},
	}
	for _, tt := range tests {
		name := tt.key + "=" + tt.value
		p := Chatmail()
		c, err := Parse(tt.key, tt.value)
		if err == nil {
			err = p.Set(c)
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one containing %q", name, err, tt.err)
		case tt.err != "":
			if !reflect.DeepEqual(p, Chatmail()) {
				t.Errorf("%s: failed Set changed the profile", name)
			}
		case !tt.check(p):
			t.Errorf("%s: profile %+v", name, p)
		}
	}
}

// TestSetTogether changes settings that depend on each other in one Set, as one
// `domain set` command does, and checks cross-setting rules for an ordinary domain.
func TestSetTogether(t *testing.T) {
	tests := []struct {
		start Profile
		args  []string
		err   string
	}{
		{Ordinary(), []string{"xchatmail=on"}, "xchatmail: must stay off unless chatmail=on"},
		{Ordinary(), []string{"chatmail=on", "xchatmail=on"}, ""},
		{Ordinary(), []string{"xchatmail=on", "chatmail=on"}, ""},
		{Ordinary(), []string{"registration=open"}, "registration: open needs chatmail=on"},
		{Ordinary(), []string{"chatmail=on", "registration=open"}, "localpart_len: must be set when registration=open"},
		{Ordinary(), []string{"chatmail=on", "registration=open", "localpart_len=9", "password_min=9"}, ""},
		{Ordinary(), []string{"trim_mailbox=on"}, "trim_mailbox: needs max_mailbox_size"},
		{Ordinary(), []string{"trim_mailbox=on", "max_mailbox_size=2GiB"}, ""},
		{Ordinary(), []string{"turn=turn.example.org:3478", "turn_secret=k"}, ""},
		{Ordinary(), []string{"push=on", "enforce_e2ee_incoming=on", "queue_lifetime=3d"}, ""},
		{Chatmail(), []string{"chatmail=off"}, "xchatmail: must stay off unless chatmail=on"},
		{Chatmail(), []string{"chatmail=off", "xchatmail=off", "registration=closed"}, ""},
		{Ordinary(), []string{"push"}, `parse setting "push": write key=value`},
	}
	for _, tt := range tests {
		p := tt.start
		var err error
		var changes []Change
		for _, a := range tt.args {
			var c Change
			if c, err = ParseArg(a); err != nil {
				break
			}
			changes = append(changes, c)
		}
		if err == nil {
			err = p.Set(changes...)
		}
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		}
	}
	// Validate reports every problem, not only the first.
	bad := Ordinary()
	bad.XChatmail, bad.Registration, bad.TURN = true, Open, TURN{Mode: TURNExternal, Addr: "t.example:3478"}
	err := bad.Validate()
	for _, key := range []string{"xchatmail:", "registration:", "localpart_len:", "password_min:", "turn_secret:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v, want a message for %s", err, key)
		}
	}
	var zero Change
	if err := bad.Set(zero); err == nil {
		t.Error("Set accepted a Change not made by Parse")
	}
}

func TestString(t *testing.T) {
	p := Chatmail()
	if got := p.String(); got != "chatmail" {
		t.Errorf("defaults: %q", got)
	}
	if got := Ordinary().String(); got != "ordinary" {
		t.Errorf("defaults: %q", got)
	}
	var changes []Change
	for _, a := range []string{"push=off", "send_rate=120/min,burst=20", "turn=turn.example.org:3478", "turn_secret=hunter2"} {
		c, err := ParseArg(a)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	if err := p.Set(changes...); err != nil {
		t.Fatal(err)
	}
	const want = "chatmail send_rate=120/min,burst=20 push=off turn=turn.example.org:3478 turn_secret=(set)"
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, s := range p.Settings() {
		if strings.Contains(s.Value, "hunter2") {
			t.Errorf("listing shows the secret: %s=%s", s.Key, s.Value)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	custom := Chatmail()
	custom.SendRate = Rate{5, time.Second, 3}
	custom.DeleteLargeAfter = 36 * time.Hour
	custom.MaxMessageSize = 1536 * config.KiB
	custom.AdminContact = "admin@chat.example"
	custom.IrohRelay = "https://iroh.chat.example/"
	custom.TURN = TURN{Mode: TURNExternal, Addr: "[2001:db8::1]:3478", Secret: `q"\x`}
	custom.ResourceGuard = ResourceGuard{MaxLoad1: 0.75}
	custom.LocalpartLen = Range{6, 20}
	for _, p := range []Profile{Chatmail(), Ordinary(), custom} {
		text := p.Encode()
		var m map[string]string
		if err := json.Unmarshal([]byte(text), &m); err != nil || len(m) != len(Keys()) {
			t.Errorf("encoding %s: %d keys, %v", text, len(m), err)
		}
		got, err := Decode(text)
		if err != nil {
			t.Errorf("Decode(%s): %v", text, err)
			continue
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", text, got, p)
		}
	}

	tests := []struct {
		text string
		want func(Profile) bool
		err  string
	}{
		// Missing keys take the defaults of the domain's kind; unknown ones are skipped.
		{`{"chatmail":"on","push":"off"}`, func(p Profile) bool { q := Chatmail(); q.Push = false; return reflect.DeepEqual(p, q) }, ""},
		{`{}`, func(p Profile) bool { return reflect.DeepEqual(p, Ordinary()) }, ""},
		{`{"chatmail":"off","future_setting":"x"}`, func(p Profile) bool { return reflect.DeepEqual(p, Ordinary()) }, ""},
		{``, nil, "decode profile: the text is empty"},
		{`[1]`, nil, "decode profile: json: cannot unmarshal"},
		{`{"push":1}`, nil, "decode profile: json: cannot unmarshal"},
		{`{"chatmail":"yes please"}`, nil, `decode profile: set chatmail: "yes please" is not on or off`},
		{`{"send_rate":"fast"}`, nil, `decode profile: set send_rate: "fast" is not a rate`},
		{`{"xchatmail":"on"}`, nil, "decode profile: set profile: xchatmail: must stay off unless chatmail=on"},
	}
	for _, tt := range tests {
		p, err := Decode(tt.text)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Decode(%s): error %v, want %q", tt.text, err, tt.err)
			}
		case err != nil:
			t.Errorf("Decode(%s): %v", tt.text, err)
		case !tt.want(p):
			t.Errorf("Decode(%s) = %+v", tt.text, p)
		}
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("key %s twice", k)
		}
		seen[k] = true
		if _, err := Parse(k, Chatmail().value(k)); err != nil {
			t.Errorf("a listed value does not parse back: %v", err)
		}
	}
	if keys[0] != "chatmail" || len(keys) != 23 {
		t.Errorf("keys: %v", keys)
	}
}

// value is the listed value of key, for tests.
func (p Profile) value(key string) string {
	for _, s := range p.Settings() {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
