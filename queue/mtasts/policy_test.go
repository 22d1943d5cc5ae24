package mtasts

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Policy
		wantErr string
	}{
		{
			name: "enforce",
			in:   "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			want: &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second},
		},
		{
			name: "LF, spaces, unknown fields, trailing dot, upper case mx",
			in:   "version:STSv1\nmode:   testing \nfoo: bar\nmx: MX.Example.COM.\nmax_age: 86400\n\n",
			want: &Policy{Mode: Testing, MX: []string{"mx.example.com"}, MaxAge: 86400 * time.Second},
		},
		{
			name: "none without mx",
			in:   "version: STSv1\nmode: none\nmax_age: 0\n",
			want: &Policy{Mode: None},
		},
		{
			name: "first duplicate wins",
			in:   "version: STSv1\nmode: enforce\nmode: none\nmx: a.test\nmax_age: 10\nmax_age: 20\n",
			want: &Policy{Mode: Enforce, MX: []string{"a.test"}, MaxAge: 10 * time.Second},
		},
		{name: "no version", in: "mode: enforce\nmx: a.test\nmax_age: 10\n", wantErr: "version"},
		{name: "bad version", in: "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 10\n", wantErr: "version"},
		{name: "bad mode", in: "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 10\n", wantErr: "mode"},
		{name: "no max_age", in: "version: STSv1\nmode: enforce\nmx: a.test\n", wantErr: "max_age missing"},
		{name: "negative max_age", in: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", wantErr: "max_age"},
		{name: "huge max_age", in: "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", wantErr: "exceeds"},
		{name: "enforce without mx", in: "version: STSv1\nmode: enforce\nmax_age: 10\n", wantErr: "without mx"},
		{name: "bad mx", in: "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 10\n", wantErr: "mx pattern"},
		{name: "double wildcard", in: "version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 10\n", wantErr: "mx pattern"},
		{name: "no colon", in: "version: STSv1\nmode enforce\n", wantErr: "no ':'"},
		{name: "too big", in: "version: STSv1\n" + strings.Repeat("x: y\n", 20000), wantErr: "larger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{Mode: Enforce, MX: []string{"mx.a.test", "*.b.test"}}
	tests := []struct {
		host string
		want bool
	}{
		{"mx.a.test", true},
		{"MX.A.TEST.", true},
		{"mx2.a.test", false},
		{"a.test", false},
		{"mx.b.test", true},
		{"b.test", false},
		{"x.mx.b.test", false},
		{".b.test", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := p.Match(tc.host); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z", true},
		{"v=STSv1;id=abc", "abc", true},
		{"v=STSv1; id=abc; ext=1", "abc", true},
		{"v=STSv1;  id=a ;", "a", true},
		{"v=STSv1;", "", false},
		{"v=STSv2; id=a", "", false},
		{"id=a; v=STSv1", "", false},
		{"v=STSv1; id=" + strings.Repeat("a", 33), "", false},
		{"v=STSv1; id=a-b", "", false},
		{"v=STSv1;; id=a", "", false},
		{"v=STSv1; id", "", false},
	}
	for _, tc := range tests {
		got, err := ParseRecord(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRecord(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version:STSv1\nmode:testing\nmx:a\nmax_age:1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		// What we accept, we can write back and read again unchanged: the store
		// keeps policies in this form.
		q, err := Parse([]byte(p.String()))
		if err != nil {
			t.Fatalf("reparse %q: %v", p.String(), err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed policy: %+v → %+v", p, q)
		}
		for _, mx := range p.MX {
			host := strings.TrimPrefix(mx, "*.")
			if strings.HasPrefix(mx, "*.") {
				host = "x." + host
			}
			if !p.Match(host) {
				t.Fatalf("policy %+v does not match its own pattern %q", p, mx)
			}
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Fuzz(func(t *testing.T, txt string) {
		id, err := ParseRecord(txt)
		if err == nil && (id == "" || len(id) > 32 || !alnum(id)) {
			t.Fatalf("ParseRecord(%q) accepted id %q", txt, id)
		}
	})
}
