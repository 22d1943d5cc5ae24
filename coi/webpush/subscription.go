package webpush

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of a subscription value (§8.3).
const (
	MaxValueSize      = 4096
	maxStringField    = 128
	maxEndpointLength = 1024
	maxExcludeFrom    = 10
	// maxAddressLength bounds one exclude_from address: 64 local + @ + 255 domain.
	maxAddressLength = 320
	authSize         = 16
)

// createdLayout is RFC 3339 with the zone always numeric, so UTC shows as "+00:00" as in
// Dovecot's output (§8.5).
const createdLayout = "2006-01-02T15:04:05-07:00"

// Message types (§8.3, D12): both vocabularies, case-sensitive.
const (
	MsgTypeChat  = "chat"
	MsgTypeMail  = "mail"
	MsgTypeEmail = "email"
	MsgTypeAll   = "all"
	MsgTypeAny   = "any"
)

// Subscription is one WebPush subscription. The strings are kept as the client sent
// them, so that the public form echoes them (§8.3, §8.5).
type Subscription struct {
	Client   string
	Device   string
	MsgType  string
	Endpoint string
	P256DH   string
	Auth     string
	// ExcludeFrom is nil when the client sent none.
	ExcludeFrom []string

	// Created and Validated are the server's, never the client's.
	Created   time.Time
	Validated bool

	endpoint   *url.URL
	uaPublic   *ecdh.PublicKey
	authSecret []byte
	validation string // pending only
}

// ParseSubscription checks a client's subscription value (§8.3): at most MaxValueSize
// bytes, a JSON object, and each field's rule, checked in the spec's table order so that
// the first failing field is the one reported. Unknown fields, and created, validated and
// validation, are ignored. It does not look the endpoint's host up; Subscribe does.
func ParseSubscription(value []byte) (*Subscription, error) {
	if len(value) > MaxValueSize {
		return nil, ErrTooLarge
	}
	return parseFields(value)
}

func parseFields(value []byte) (*Subscription, error) {
	var probe json.RawMessage
	if err := json.Unmarshal(value, &probe); err != nil {
		return nil, invalidJSON(jsonReason(err))
	}
	if len(probe) == 0 || probe[0] != '{' {
		return nil, invalidJSON("not an object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(probe, &top); err != nil {
		return nil, invalidJSON(jsonReason(err))
	}
	sub := &Subscription{}
	var ok bool
	if sub.Client, ok = stringField(top["client"], maxStringField); !ok {
		return nil, InvalidField("client")
	}
	if sub.Device, ok = stringField(top["device"], maxStringField); !ok {
		return nil, InvalidField("device")
	}
	sub.MsgType, ok = stringField(top["msgtype"], maxStringField)
	switch sub.MsgType {
	case MsgTypeChat, MsgTypeMail, MsgTypeEmail, MsgTypeAll, MsgTypeAny:
	default:
		ok = false
	}
	if !ok {
		return nil, InvalidField("msgtype")
	}

	var resource map[string]json.RawMessage
	if !objectField(top["resource"], &resource) {
		return nil, InvalidField("endpoint")
	}
	if sub.Endpoint, ok = stringField(resource["endpoint"], maxEndpointLength); !ok {
		return nil, InvalidField("endpoint")
	}
	u, err := parseEndpoint(sub.Endpoint)
	if err != nil {
		return nil, InvalidField("endpoint")
	}
	sub.endpoint = u

	var keys map[string]json.RawMessage
	if !objectField(resource["keys"], &keys) {
		return nil, InvalidField("p256dh")
	}
	sub.P256DH, ok = stringField(keys["p256dh"], -1)
	point, good := decodeKey(sub.P256DH)
	if !ok || !good {
		return nil, InvalidField("p256dh")
	}
	// NewPublicKey takes only the 65-byte uncompressed form and checks the point is on
	// the curve (and not the identity): an off-curve point would leak the ephemeral key.
	if sub.uaPublic, err = ecdh.P256().NewPublicKey(point); err != nil {
		return nil, InvalidField("p256dh")
	}
	sub.Auth, ok = stringField(keys["auth"], -1)
	secret, good := decodeKey(sub.Auth)
	if !ok || !good || len(secret) != authSize || len(keys) != 2 {
		return nil, InvalidField("auth")
	}
	sub.authSecret = secret

	if raw, present := top["exclude_from"]; present && !isNull(raw) {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || list == nil || len(list) > maxExcludeFrom {
			return nil, InvalidField("exclude_from")
		}
		sub.ExcludeFrom = make([]string, 0, len(list))
		for _, item := range list {
			addr, ok := stringField(item, maxAddressLength)
			if !ok || strings.ContainsFunc(addr, isControl) {
				return nil, InvalidField("exclude_from")
			}
			sub.ExcludeFrom = append(sub.ExcludeFrom, addr)
		}
	}
	return sub, nil
}

// stringField decodes a JSON string of 1..limit bytes (limit < 0: no bound).
func stringField(raw json.RawMessage, limit int) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" || (limit >= 0 && len(s) > limit) {
		return "", false
	}
	return s, true
}

func objectField(raw json.RawMessage, dst *map[string]json.RawMessage) bool {
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	return json.Unmarshal(raw, dst) == nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// jsonReason is the decoder's message without Go type names.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " at offset " + strconv.FormatInt(se.Offset, 10)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// parseEndpoint checks an endpoint is an absolute https URL (§8.3): no user info
// (the client would send it as credentials), no fragment, a host and a valid port.
// Only printable ASCII: push services hand out plain URLs, and nothing else can reach
// a log line or the request line unchanged.
func parseEndpoint(s string) (*url.URL, error) {
	if s == "" || len(s) > maxEndpointLength {
		return nil, errors.New("bad length")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return nil, errors.New("not printable ASCII")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse endpoint: %w", err)
	}
	if u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host == "" || u.Hostname() == "" ||
		u.Fragment != "" || strings.Contains(s, "#") {
		return nil, errors.New("not an absolute https URL")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New("bad port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, errors.New("empty port")
	}
	return u, nil
}

// decodeKey decodes base64 in either alphabet, padding optional (D11: SPEC-W's own
// example is standard base64, browsers give base64url). The alphabets must not be
// mixed, and only alphabet characters count: the decoders would skip CR and LF.
func decodeKey(s string) ([]byte, bool) {
	body := strings.TrimRight(s, "=")
	pad := len(s) - len(body)
	if body == "" || pad > 2 || (pad > 0 && len(s)%4 != 0) {
		return nil, false
	}
	std, urlSafe := false, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			urlSafe = true
		default:
			return nil, false
		}
	}
	if std && urlSafe {
		return nil, false
	}
	enc := base64.RawStdEncoding
	if urlSafe {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(body)
	return b, err == nil
}

// appendPublic appends the public form (§8.5): compact JSON in the spec's order.
func (s *Subscription) appendPublic(dst []byte) []byte {
	dst = append(dst, `{"created":`...)
	dst = appendJSONString(dst, s.Created.UTC().Format(createdLayout))
	dst = append(dst, `,"validated":`...)
	dst = strconv.AppendBool(dst, s.Validated)
	dst = append(dst, `,"client":`...)
	dst = appendJSONString(dst, s.Client)
	dst = append(dst, `,"device":`...)
	dst = appendJSONString(dst, s.Device)
	dst = append(dst, `,"msgtype":`...)
	dst = appendJSONString(dst, s.MsgType)
	dst = append(dst, `,"resource":{"endpoint":`...)
	dst = appendJSONString(dst, s.Endpoint)
	dst = append(dst, `,"keys":{"p256dh":`...)
	dst = appendJSONString(dst, s.P256DH)
	dst = append(dst, `,"auth":`...)
	dst = appendJSONString(dst, s.Auth)
	dst = append(dst, "}}"...)
	if s.ExcludeFrom != nil {
		dst = append(dst, `,"exclude_from":[`...)
		for i, a := range s.ExcludeFrom {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, a)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// PublicJSON is the public form of s (§8.5).
func (s *Subscription) PublicJSON() []byte { return s.appendPublic(make([]byte, 0, 512)) }

// encodeStored is the value the caller stores: the public form with the validation
// string of a pending subscription added at the end. Reading it back goes through the
// same field checks as a client's value, so a damaged entry is refused, not used.
func (s *Subscription) encodeStored() []byte {
	b := s.appendPublic(make([]byte, 0, 576))
	if s.validation == "" {
		return b
	}
	b = b[:len(b)-1]
	b = append(b, `,"validation":`...)
	b = appendJSONString(b, s.validation)
	return append(b, '}')
}

// DecodeStored reads a value made by Subscribe or Validate.
func DecodeStored(stored []byte) (*Subscription, error) {
	// No size limit: the stored form may be a little longer than what the client sent
	// (created, validated, invalid UTF-8 turned into U+FFFD).
	sub, err := parseFields(stored)
	if err != nil {
		return nil, fmt.Errorf("decode subscription: %w", err)
	}
	var meta struct {
		Created    string `json:"created"`
		Validated  bool   `json:"validated"`
		Validation string `json:"validation"`
	}
	if err := json.Unmarshal(stored, &meta); err != nil {
		return nil, fmt.Errorf("decode subscription: %w", err)
	}
	created, err := time.Parse(createdLayout, meta.Created)
	if err != nil {
		return nil, fmt.Errorf("decode subscription created: %w", err)
	}
	if !meta.Validated && meta.Validation == "" {
		return nil, errors.New("decode subscription: pending without a validation string")
	}
	sub.Created, sub.Validated, sub.validation = created, meta.Validated, meta.Validation
	if sub.Validated {
		sub.validation = ""
	}
	return sub, nil
}
