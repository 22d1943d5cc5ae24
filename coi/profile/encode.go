package profile

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Encode writes p as one JSON object mapping every key to its value as `domain set`
// takes it, e.g. {"chatmail":"on","send_rate":"60/min,burst=10",...}, for the store
// to keep in one TEXT column. Every setting is written, not only those that differ
// from the defaults, so that a later release changing a default does not silently
// change existing domains.
func (p Profile) Encode() string {
	m := map[string]string{}
	for _, s := range settings() {
		m[s.key] = s.format(&p)
	}
	b, _ := json.Marshal(m) // cannot fail: Parse admits only valid UTF-8 without controls
	return string(b)
}

// Decode reads what Encode wrote. Keys it does not know are skipped, so that a profile
// written by a newer release still loads; keys missing from the text keep the
// defaults of the kind of domain ("chatmail" on or off), so that one written by an
// older release gets the defaults of settings added since. The result is validated.
func Decode(text string) (Profile, error) {
	if text == "" {
		return Profile{}, errors.New("decode profile: the text is empty")
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return Profile{}, fmt.Errorf("decode profile: %w", err)
	}
	chatmail := false
	if v, ok := m["chatmail"]; ok {
		b, err := parseBool(v)
		if err != nil {
			return Profile{}, fmt.Errorf("decode profile: set chatmail: %w", err)
		}
		chatmail = b
	}
	var changes []Change
	for _, s := range settings() {
		v, ok := m[s.key]
		if !ok {
			continue
		}
		c, err := Parse(s.key, v)
		if err != nil {
			return Profile{}, fmt.Errorf("decode profile: %w", err)
		}
		changes = append(changes, c)
	}
	p := Default(chatmail)
	if err := p.Set(changes...); err != nil {
		return Profile{}, fmt.Errorf("decode profile: %w", err)
	}
	return p, nil
}
