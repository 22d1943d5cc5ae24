package webpush

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseSubscription feeds subscription values to the parser (§8.3); the kept
// corpus is testdata/fuzz/FuzzParseSubscription. Whatever the input, it must not
// panic, must refuse with one of the spec's texts, and what it accepts must survive
// the store: the public form is valid JSON that parses again to the same
// subscription, and the stored form reads back to the same public form.
func FuzzParseSubscription(f *testing.F) {
	f.Add(okValue(""))
	f.Add(subValue("c", "d", "all", "https://push.example.net:8443/p?x=1", p256Std, authStd, `,"exclude_from":["a@x"]`))
	f.Add([]byte(`{"client":"\u0000\ud800","device":"\"","msgtype":"chat","resource":{"endpoint":"https://[::1]/","keys":{"p256dh":"","auth":""}}}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		sub, err := ParseSubscription(value)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a refusal", err)
			}
			if !allowedRefusal(e) {
				t.Fatalf("refusal %q is not one of §8.3's", noText(err))
			}
			if strings.ContainsAny(e.Text, "\r\n\x00") {
				t.Fatalf("refusal text %q would break the response line", e.Text)
			}
			return
		}
		pub := sub.PublicJSON()
		if !json.Valid(pub) {
			t.Fatalf("public form is not JSON: %s", pub)
		}
		again, err := ParseSubscription(pub)
		if err != nil {
			t.Fatalf("public form %s does not parse: %v", pub, err)
		}
		again.Created = sub.Created
		if !bytes.Equal(again.PublicJSON(), pub) {
			t.Fatalf("public form changes on a second pass:\n%s\n%s", pub, again.PublicJSON())
		}
		sub.Created, sub.validation = time.Unix(1788256800, 0).UTC(), "v"
		back, err := DecodeStored(sub.encodeStored())
		if err != nil {
			t.Fatalf("stored form does not decode: %v\n%s", err, sub.encodeStored())
		}
		if !bytes.Equal(back.PublicJSON(), sub.PublicJSON()) || back.validation != "v" {
			t.Fatalf("stored form round trip:\n%s\n%s", back.PublicJSON(), sub.PublicJSON())
		}
	})
}

func allowedRefusal(e *Error) bool {
	if e.Is(ErrTooLarge) {
		return true
	}
	if e.Code != "CANNOT" {
		return false
	}
	if strings.HasPrefix(e.Text, "Invalid JSON: ") {
		return true
	}
	switch e.Text {
	case "Invalid subscription: client", "Invalid subscription: device", "Invalid subscription: msgtype",
		"Invalid subscription: endpoint", "Invalid subscription: p256dh", "Invalid subscription: auth",
		"Invalid subscription: exclude_from":
		return true
	}
	return false
}
