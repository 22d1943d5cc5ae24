package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coibox/coibox/store"
)

const (
	// MaxTokenSize is the largest device token accepted, in bytes (§9: the core pads
	// its encrypted token to 512 bytes and sends at most 4096).
	MaxTokenSize = 4096
	// MaxTokens is how many tokens an account keeps; a new one evicts the token set
	// longest ago. Every device re-sends its token at start, so a device that lost
	// its slot gets it back the next time it runs.
	MaxTokens = 20
	// TokenLifetime is how long a token stays valid after its last Set.
	TokenLifetime = 90 * 24 * time.Hour
	// MaxClockSkew is how far in the future a token's time may lie and still count:
	// further means the clock went back since, and the time says nothing.
	MaxClockSkew = 60 * time.Second
)

// ErrTooLarge is a token over MaxTokenSize bytes: NO [METADATA MAXSIZE 4096].
var ErrTooLarge = fmt.Errorf("device token over %d bytes", MaxTokenSize)

// ErrBadToken is an empty token or one with a byte outside printable ASCII. Tokens
// are "openpgp:" and base64; a space in one would split it in Get's answer.
var ErrBadToken = errors.New("device token is empty or not printable ASCII without spaces")

// Tokens applies the device-token rules of §9 to the store's token set and makes push
// jobs on delivery.
type Tokens struct {
	Store *store.Store
	// Now is Trigger's clock; nil means time.Now.
	Now func() time.Time
	// Kick, when set, is called after Trigger made a job; cmd wires Notifier.Kick
	// so the notification goes out at once instead of at the notifier's next look.
	Kick func()
}

// Set registers a token for an account at now (SETMETADATA INBOX
// /private/devicetoken): added to the set, or its time refreshed; never replacing
// the account's other tokens.
func (t *Tokens) Set(ctx context.Context, accountID int64, value []byte, now time.Time) error {
	if len(value) > MaxTokenSize {
		return fmt.Errorf("set device token: %w", ErrTooLarge)
	}
	if !validToken(value) {
		return fmt.Errorf("set device token: %w", ErrBadToken)
	}
	if err := t.Store.AddPushToken(ctx, accountID, string(value), now, MaxTokens); err != nil {
		return fmt.Errorf("set device token: %w", err)
	}
	return nil
}

func validToken(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Get is the GETMETADATA INBOX /private/devicetoken value at now: the account's
// valid tokens, oldest first, joined by one space; "" when there are none.
func (t *Tokens) Get(ctx context.Context, accountID int64, now time.Time) (string, error) {
	valid, err := t.valid(ctx, accountID, now)
	if err != nil {
		return "", fmt.Errorf("get device tokens: %w", err)
	}
	return strings.Join(valid, " "), nil
}

// valid lists an account's valid tokens and deletes the invalid ones.
func (t *Tokens) valid(ctx context.Context, accountID int64, now time.Time) ([]string, error) {
	all, err := t.Store.PushTokens(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var valid []string
	for _, p := range all {
		if Valid(p.LastSet, now) {
			valid = append(valid, p.Token)
			continue
		}
		if err := t.Store.DeletePushToken(ctx, accountID, p.Token); err != nil {
			return nil, err
		}
	}
	return valid, nil
}

// Valid says whether a token last set at lastSet is valid at now.
func Valid(lastSet, now time.Time) bool {
	return now.Before(lastSet.Add(TokenLifetime)) && !lastSet.After(now.Add(MaxClockSkew))
}

// Trigger is called after a delivery to an account was committed (any folder, MDNs
// included). Unless the message's From address is the account's own (the device that
// sent it needs no wake-up), every valid token gets a job, or, if it has a pending
// one, the delivery is folded into it. An error concerns only the notification:
// the delivery has succeeded, so callers log it and carry on.
func (t *Tokens) Trigger(ctx context.Context, accountID int64, accountAddress, fromAddress string) error {
	if store.Normalize(fromAddress) == store.Normalize(accountAddress) {
		return nil
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	valid, err := t.valid(ctx, accountID, now)
	if err != nil {
		return fmt.Errorf("trigger push: %w", err)
	}
	if len(valid) == 0 {
		return nil
	}
	made := false
	// One write for all of the account's devices.
	err = t.Store.Write(ctx, func(tx *store.Tx) error {
		for _, tok := range valid {
			m, err := tx.EnqueuePush(accountID, tok, now)
			if err != nil {
				return err
			}
			made = made || m
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("trigger push: %w", err)
	}
	if made && t.Kick != nil {
		t.Kick()
	}
	return nil
}

// TokenID names a token in logs: the first 12 hex digits of its SHA-256, enough to
// tell an account's devices apart and useless for sending a notification.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}
