package profile

import (
	"reflect"
	"testing"
)

// FuzzSet applies arbitrary assignments to both default profiles: whatever Set accepts
// must survive the store's round trip unchanged, and Decode must never panic.
func FuzzSet(f *testing.F) {
	for _, s := range Chatmail().Settings() {
		f.Add(s.Key, s.Value)
	}
	f.Add("send_rate", "5/s,burst=3")
	f.Add("turn", "[2001:db8::1]:3478")
	f.Add("resource_guard", "load1=0.5,disk=3GiB")
	f.Fuzz(func(t *testing.T, key, value string) {
		Decode(value) // must not panic
		for _, p := range []Profile{Chatmail(), Ordinary()} {
			c, err := Parse(key, value)
			if err != nil {
				return
			}
			if p.Set(c) != nil {
				continue
			}
			got, err := Decode(p.Encode())
			if err != nil {
				t.Fatalf("%s=%q: Decode of Encode: %v", key, value, err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("%s=%q: round trip\n got %+v\nwant %+v", key, value, got, p)
			}
		}
	})
}
