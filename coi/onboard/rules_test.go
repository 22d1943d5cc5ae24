package onboard

import (
	"errors"
	"strings"
	"testing"
)

type ruleCase struct {
	name     string
	address  string
	password string
	rules    Rules
	want     Reason // 0: accepted
}

// ruleCases are the table of TestCheckNewAccount and the seeds of FuzzCheckNewAccount.
func ruleCases() []ruleCase {
	chat := ChatmailRules()
	wide := Rules{LocalpartLen: Range{Min: 1, Max: 64}, PasswordMin: 9}
	return []ruleCase{
		{"chatmail name", "abc123xyz@chat.example", "s3cret-pw", chat, 0},
		{"mixed case is lower-cased", "AbC123XyZ@Chat.Example", "s3cret-pw", chat, 0},
		{"dot underscore hyphen", "a.b_c-d.e@chat.example", "s3cret-pw", chat, 0},
		{"no at sign", "abc123xyzchat.example", "s3cret-pw", chat, NotAnAddress},
		{"two at signs", "abc@23xyz@chat.example", "s3cret-pw", chat, NotAnAddress},
		{"empty local part", "@chat.example", "s3cret-pw", chat, NotAnAddress},
		{"empty domain", "abc123xyz@", "s3cret-pw", chat, NotAnAddress},
		{"empty", "", "s3cret-pw", chat, NotAnAddress},
		{"plus", "abc+23xyz@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"space", "abc 23xyz@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"leading space", " abc123xyz@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"quote", `"abc12xy"@chat.example`, "s3cret-pw", chat, BadLocalpart},
		{"non-ASCII letters", "abcäé1xy@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"kelvin sign is not k", "\u212Aabcdefgh@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"NUL", "abc\x0023xyz@chat.example", "s3cret-pw", chat, BadLocalpart},
		{"too short", "abc@chat.example", "s3cret-pw", chat, LocalpartOutOfRange},
		{"too long", "abcdefghij@chat.example", "s3cret-pw", chat, LocalpartOutOfRange},
		{"within a wider range", "abcdefghij@chat.example", "s3cret-pw", Rules{LocalpartLen: Range{6, 12}, PasswordMin: 9}, 0},
		{"zero rules take one character", "a@x", "p", Rules{}, 0},
		{"zero rules refuse an empty password", "a@x", "", Rules{}, ShortPassword},
		{"zero rules stop at 64", strings.Repeat("a", 65) + "@x", "p", Rules{}, LocalpartOutOfRange},
		{"zero rules allow 64", strings.Repeat("a", 64) + "@x", "p", Rules{}, 0},
		{"postmaster", "postmaster@chat.example", "s3cret-pw", wide, ReservedName},
		{"Mailer-Daemon", "Mailer-Daemon@chat.example", "s3cret-pw", wide, ReservedName},
		{"abuse", "abuse@chat.example", "s3cret-pw", wide, ReservedName},
		{"admin", "ADMIN@chat.example", "s3cret-pw", wide, ReservedName},
		{"root", "root@chat.example", "s3cret-pw", wide, ReservedName},
		{"reserved with zero rules", "root@x", "p", Rules{}, ReservedName},
		{"rooter is not root", "rooter@chat.example", "s3cret-pw", wide, 0},
		{"extra reserved name", "support@chat.example", "s3cret-pw", Rules{Reserved: []string{"Support"}}, ReservedName},
		{"password one short", "abc123xyz@chat.example", "s3cret-p", chat, ShortPassword},
		{"password counts characters not bytes", "abc123xyz@chat.example", "äöüäöüäöü", chat, 0},
		{"eight two-byte characters are short", "abc123xyz@chat.example", "äöüäöüäö", chat, ShortPassword},
	}
}

func TestCheckNewAccount(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNewAccount(tc.address, tc.password, tc.rules)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("CheckNewAccount(%q) = %v, want nil", tc.address, err)
				}
				return
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("CheckNewAccount(%q) = %v, want a *RuleError", tc.address, err)
			}
			if re.Reason != tc.want {
				t.Fatalf("CheckNewAccount(%q) reason = %v, want %v", tc.address, re.Reason, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "check new account ") {
				t.Errorf("error %q does not start with the verb and noun", err)
			}
			if strings.Contains(err.Error(), tc.password) && !strings.Contains(tc.address, tc.password) && len(tc.password) >= 6 {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestReservedNamesAreRefused(t *testing.T) {
	for _, name := range ReservedNames() {
		err := CheckNewAccount(name+"@chat.example", "long enough password", Rules{})
		var re *RuleError
		if !errors.As(err, &re) || re.Reason != ReservedName {
			t.Errorf("%s: got %v, want a reserved-name refusal", name, err)
		}
	}
}

func TestRuleErrorClipsAddress(t *testing.T) {
	long := strings.Repeat("ä", 5000) + "@chat.example"
	err := CheckNewAccount(long, "s3cret-pw", ChatmailRules())
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(err.Error()); n > 2*maxLoggedAddress+100 {
		t.Errorf("error is %d bytes long", n)
	}
	var re *RuleError
	errors.As(err, &re)
	if !strings.HasSuffix(re.Address, "ä…") {
		t.Errorf("clipped address ends %q, want a whole character and an ellipsis", re.Address[len(re.Address)-8:])
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"abc@chat.example":      "abc@chat.example",
		"AbC@Chat.EXAMPLE":      "abc@chat.example",
		"\u212Aim@chat.example": "\u212Aim@chat.example",
		"ÄBC@chat.example":      "Äbc@chat.example",
		"XÄBC@chat.example":     "xÄbc@chat.example",
		"":                      "",
		"Z[`@a":                 "z[`@a",
	} {
		if got := NormalizeAddress(in); got != want {
			t.Errorf("NormalizeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
