package webadmin

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func testAutoconfig() http.Handler {
	serves := func(_ context.Context, d string) (bool, error) {
		if d == "broken.example" {
			return false, errors.New("store closed")
		}
		return d == "example.org", nil
	}
	return New(Options{Autoconfig: &Autoconfig{Hostname: "mail.example.org", IMAPS: 993, IMAP: 143, Submissions: 465, Submission: 587, Serves: serves}})
}

// thunderbirdConfig is the part of a config-v1.1.xml Thunderbird's parser reads,
// declared here independently of the server's types.
type thunderbirdConfig struct {
	Provider struct {
		ID       string `xml:"id,attr"`
		Domain   string `xml:"domain"`
		Incoming []struct {
			Type     string `xml:"type,attr"`
			Hostname string `xml:"hostname"`
			Port     int    `xml:"port"`
			Socket   string `xml:"socketType"`
			Username string `xml:"username"`
			Auth     string `xml:"authentication"`
		} `xml:"incomingServer"`
		Outgoing []struct {
			Type     string `xml:"type,attr"`
			Hostname string `xml:"hostname"`
			Port     int    `xml:"port"`
			Socket   string `xml:"socketType"`
			Username string `xml:"username"`
		} `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

func get(h http.Handler, method, url, host, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, url, strings.NewReader(body))
	if host != "" {
		req.Host = host
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestMozillaAutoconfigALPN443: with IMAP and submission on 443 too, both are listed
// last (chatmail §5).
func TestMozillaAutoconfigALPN443(t *testing.T) {
	serves := func(context.Context, string) (bool, error) { return true, nil }
	h := New(Options{Autoconfig: &Autoconfig{Hostname: "mail.example.org", IMAPS: 993, Submissions: 465, ALPN443: 443, Serves: serves}})
	var c thunderbirdConfig
	if err := xml.Unmarshal(get(h, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org", "").Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	in, out := c.Provider.Incoming, c.Provider.Outgoing
	if len(in) != 2 || in[1].Port != 443 || in[1].Socket != "SSL" || len(out) != 2 || out[1].Port != 443 || out[1].Socket != "SSL" || out[1].Type != "smtp" {
		t.Errorf("servers %+v %+v", in, out)
	}
}

func TestMozillaAutoconfig(t *testing.T) {
	h := testAutoconfig()
	tests := []struct {
		name, url, host string
		code            int
	}{
		{"autoconfig host", "/mail/config-v1.1.xml", "autoconfig.example.org", 200},
		{"autoconfig host with address", "/mail/config-v1.1.xml?emailaddress=alice%40example.org", "autoconfig.example.org", 200},
		{"well-known on the domain", "/.well-known/autoconfig/mail/config-v1.1.xml", "Example.ORG.", 200},
		{"well-known on the hostname, by address", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice@example.org", "mail.example.org:443", 200},
		{"other domain", "/mail/config-v1.1.xml", "autoconfig.example.com", 404},
		{"other domain by address", "/mail/config-v1.1.xml?emailaddress=bob@example.com", "autoconfig.example.org", 404},
		{"not an address", "/mail/config-v1.1.xml?emailaddress=%3Cscript%3E", "autoconfig.example.org", 400},
		{"store failing", "/mail/config-v1.1.xml", "autoconfig.broken.example", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(h, "GET", tt.url, tt.host, "")
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.code != 200 {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/xml; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			var c thunderbirdConfig
			if err := xml.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatalf("parse: %v\n%s", err, rec.Body)
			}
			if c.Provider.ID != "example.org" || c.Provider.Domain != "example.org" || len(c.Provider.Incoming) != 2 || len(c.Provider.Outgoing) != 2 {
				t.Fatalf("config %+v", c)
			}
			in, out := c.Provider.Incoming[0], c.Provider.Outgoing[0]
			if in.Type != "imap" || in.Hostname != "mail.example.org" || in.Port != 993 || in.Socket != "SSL" || in.Username != "%EMAILADDRESS%" || in.Auth != "password-cleartext" {
				t.Errorf("first incoming server %+v", in)
			}
			if c.Provider.Incoming[1].Port != 143 || c.Provider.Incoming[1].Socket != "STARTTLS" {
				t.Errorf("second incoming server %+v", c.Provider.Incoming[1])
			}
			if out.Type != "smtp" || out.Port != 465 || out.Socket != "SSL" || c.Provider.Outgoing[1].Port != 587 || c.Provider.Outgoing[1].Socket != "STARTTLS" {
				t.Errorf("outgoing servers %+v", c.Provider.Outgoing)
			}
		})
	}
}

// outlookResponse is what Outlook reads from a POX Autodiscover answer.
type outlookResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		Account struct {
			AccountType string `xml:"AccountType"`
			Action      string `xml:"Action"`
			Protocol    []struct {
				Type, Server, LoginName, SSL, SPA, Encryption string
				Port                                          int
			} `xml:"Protocol"`
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Account"`
	} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

func TestAutodiscover(t *testing.T) {
	h := testAutoconfig()
	request := func(addr string) string {
		return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>` + addr + `</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request>
</Autodiscover>`
	}
	tests := []struct {
		name, path, body string
		code             int
	}{
		{"lower-case path", "/autodiscover/autodiscover.xml", request("alice@example.org"), 200},
		{"Outlook's path", "/Autodiscover/Autodiscover.xml", request(" alice@example.org "), 200},
		{"other domain", "/autodiscover/autodiscover.xml", request("bob@example.com"), 404},
		{"no address", "/autodiscover/autodiscover.xml", request(""), 400},
		{"not XML", "/autodiscover/autodiscover.xml", "alice@example.org", 400},
		{"too big", "/autodiscover/autodiscover.xml", request("alice@example.org") + strings.Repeat(" ", maxAutodiscoverReq), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(h, "POST", tt.path, "autodiscover.example.org", tt.body)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.code != 200 {
				return
			}
			var r outlookResponse
			if err := xml.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("parse: %v\n%s", err, rec.Body)
			}
			a := r.Response.Account
			if a.AccountType != "email" || a.Action != "settings" || len(a.Protocol) != 2 {
				t.Fatalf("account %+v\n%s", a, rec.Body)
			}
			imap, smtp := a.Protocol[0], a.Protocol[1]
			if imap.Type != "IMAP" || imap.Server != "mail.example.org" || imap.Port != 993 || imap.SSL != "on" || imap.SPA != "off" || imap.LoginName != "alice@example.org" {
				t.Errorf("IMAP %+v", imap)
			}
			if smtp.Type != "SMTP" || smtp.Port != 465 || smtp.Encryption != "SSL" || smtp.LoginName != "alice@example.org" {
				t.Errorf("SMTP %+v", smtp)
			}
		})
	}
	if rec := get(h, "GET", "/autodiscover/autodiscover.xml", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
}

// parsePlist reads an XML property list's dictionaries into maps, as iOS would,
// arrays into slices; it fails on anything it does not know.
func parsePlist(t *testing.T, body io.Reader) map[string]any {
	t.Helper()
	d := xml.NewDecoder(body)
	var value func(start xml.StartElement) any
	value = func(start xml.StartElement) any {
		switch start.Name.Local {
		case "dict":
			m := map[string]any{}
			var key string
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatal(err)
				}
				switch tok := tok.(type) {
				case xml.StartElement:
					if tok.Name.Local == "key" {
						var k string
						if err := d.DecodeElement(&k, &tok); err != nil {
							t.Fatal(err)
						}
						key = k
						continue
					}
					if _, dup := m[key]; dup || key == "" {
						t.Fatalf("value without a key, or key %q twice", key)
					}
					m[key] = value(tok)
					key = ""
				case xml.EndElement:
					return m
				}
			}
		case "array":
			var a []any
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatal(err)
				}
				switch tok := tok.(type) {
				case xml.StartElement:
					a = append(a, value(tok))
				case xml.EndElement:
					return a
				}
			}
		case "string", "integer":
			var s string
			if err := d.DecodeElement(&s, &start); err != nil {
				t.Fatal(err)
			}
			return s
		case "true", "false":
			_ = d.Skip()
			return start.Name.Local == "true"
		}
		t.Fatalf("unknown plist element %q", start.Name.Local)
		return nil
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "dict" {
			return value(se).(map[string]any)
		}
	}
}

func TestMobileconfig(t *testing.T) {
	h := testAutoconfig()
	rec := get(h, "GET", "/apple.mobileconfig?email=alice%40example.org", "mail.example.org", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-apple-aspen-config; charset=utf-8" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename="example.org.mobileconfig"` {
		t.Fatalf("%d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
	top := parsePlist(t, rec.Body)
	if top["PayloadType"] != "Configuration" || top["PayloadVersion"] != "1" || top["PayloadIdentifier"] != "org.coibox.mail.org.example.alice@example.org" {
		t.Errorf("profile %v", top)
	}
	content, ok := top["PayloadContent"].([]any)
	if !ok || len(content) != 1 {
		t.Fatalf("PayloadContent %v", top["PayloadContent"])
	}
	acct := content[0].(map[string]any)
	want := map[string]any{
		"PayloadType": "com.apple.mail.managed", "EmailAccountType": "EmailTypeIMAP", "EmailAddress": "alice@example.org",
		"IncomingMailServerHostName": "mail.example.org", "IncomingMailServerPortNumber": "993", "IncomingMailServerUseSSL": true,
		"IncomingMailServerUsername": "alice@example.org", "OutgoingMailServerHostName": "mail.example.org",
		"OutgoingMailServerPortNumber": "465", "OutgoingMailServerUseSSL": true, "OutgoingPasswordSameAsIncomingPassword": true,
	}
	for k, v := range want {
		if !reflect.DeepEqual(acct[k], v) {
			t.Errorf("%s = %#v, want %#v", k, acct[k], v)
		}
	}
	// The identifiers are stable, so installing again replaces the account.
	again := parsePlist(t, get(h, "GET", "/apple.mobileconfig?email=alice@example.org", "", "").Body)
	if again["PayloadUUID"] != top["PayloadUUID"] || len(top["PayloadUUID"].(string)) != 36 {
		t.Errorf("PayloadUUID %v then %v", top["PayloadUUID"], again["PayloadUUID"])
	}
	for _, tt := range []struct {
		url  string
		code int
	}{
		{"/apple.mobileconfig", 400},
		{"/apple.mobileconfig?email=bob@example.com", 404},
		{"/apple.mobileconfig?email=%22%3C%26%3E%22%20%3Calice%40example.org%3E", 200}, // a display name with <&> in it
	} {
		rec := get(h, "GET", tt.url, "", "")
		if rec.Code != tt.code {
			t.Errorf("%s: %d, want %d", tt.url, rec.Code, tt.code)
		}
		if rec.Code == 200 {
			parsePlist(t, rec.Body)
		}
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served") })
	tests := []struct {
		name, method, url, host, port string
		code                          int
		location                      string
	}{
		{"page", "GET", "/", "example.org", "443", 301, "https://example.org/"},
		{"query kept, port dropped", "GET", "/new?x=1", "example.org:80", "", 301, "https://example.org/new?x=1"},
		{"other HTTPS port", "GET", "/mail/config-v1.1.xml?emailaddress=a@example.org", "autoconfig.example.org:8080", "8443", 301,
			"https://autoconfig.example.org:8443/mail/config-v1.1.xml?emailaddress=a@example.org"},
		{"POST keeps its method", "POST", "/new", "example.org", "443", 308, "https://example.org/new"},
		{"IPv6 literal", "GET", "/x", "[2001:db8::1]:80", "443", 301, "https://[2001:db8::1]/x"},
		{"MTA-STS policy", "GET", STSPolicyPath, "mta-sts.example.org", "443", 200, ""},
		{"health probe", "GET", "/healthz", "127.0.0.1:80", "443", 200, ""},
		{"metrics", "GET", "/metrics", "127.0.0.1:80", "443", 200, ""},
		{"no host", "GET", "/", "", "443", 400, ""},
		{"HTTPS at a trusted proxy", "GET", "/new", "example.org", "443", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.url, nil)
			req.Host = tt.host
			if strings.HasPrefix(tt.name, "HTTPS at") {
				req.TLS = &tls.ConnectionState{} // as TrustProxies sets it
			}
			rec := httptest.NewRecorder()
			RedirectToHTTPS(next, tt.port).ServeHTTP(rec, req)
			if rec.Code != tt.code || rec.Header().Get("Location") != tt.location {
				t.Errorf("%d %q, want %d %q", rec.Code, rec.Header().Get("Location"), tt.code, tt.location)
			}
			if tt.code == 200 && rec.Body.String() != "served" {
				t.Errorf("body %q", rec.Body)
			}
		})
	}
}

// FuzzAutoconfig sends arbitrary addresses and Autodiscover bodies: every answer is
// 200 with well-formed XML naming only the served domain, or a 400 or 404.
func FuzzAutoconfig(f *testing.F) {
	f.Add("alice@example.org", "<Autodiscover><Request><EMailAddress>alice@example.org</EMailAddress></Request></Autodiscover>")
	f.Add("\"a<b\" <alice@example.org>", "<Autodiscover><Request><EMailAddress>\"&amp;\"@example.org</EMailAddress></Request></Autodiscover>")
	f.Add("@", "<Autodiscover")
	h := testAutoconfig()
	f.Fuzz(func(t *testing.T, addr, body string) {
		q := "?emailaddress=" + url.QueryEscape(addr)
		for _, rec := range []*httptest.ResponseRecorder{
			get(h, "GET", "/mail/config-v1.1.xml"+q, "autoconfig.example.org", ""),
			get(h, "GET", "/apple.mobileconfig?email="+url.QueryEscape(addr), "mail.example.org", ""),
			get(h, "POST", "/autodiscover/autodiscover.xml", "mail.example.org", body),
		} {
			switch rec.Code {
			case 200:
				d := xml.NewDecoder(rec.Body)
				for {
					_, err := d.Token()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("answer is not XML: %v", err)
					}
				}
			case 400, 404:
			default:
				t.Fatalf("status %d for %q / %q", rec.Code, addr, body)
			}
		}
	})
}
