package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTombstoned: the address belonged to an account deleted too recently to be
// given to someone else (chatmail spec §3).
var ErrTombstoned = errors.New("address was recently deleted")

// NewAccount is an account made by a rule rather than an admin: on first login to a
// chatmail domain (chatmail spec §3).
type NewAccount struct {
	Address  string
	Password string
	// EnforceE2EEIncoming is the new account's flag (spec §6.3).
	EnforceE2EEIncoming bool
	// QuotaBytes is the account's quota; 0 keeps the server default (-1 in the row).
	QuotaBytes int64
	// TombstonesSince refuses the address if an account of that name was deleted
	// after it; the zero time ignores tombstones.
	TombstonesSince time.Time
}

// CreateAccount makes an account with its default mailboxes in one write. An address
// that is taken, by an account or an alias, gives ErrExists; one deleted after
// TombstonesSince, ErrTombstoned. Concurrent calls for one address make it once: the
// others get ErrExists and should authenticate instead.
func (s *Store) CreateAccount(ctx context.Context, n NewAccount) (*Account, error) {
	address, err := CheckAddress(n.Address)
	if err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	_, domain, _ := SplitAddress(address)
	if n.Password == "" {
		return nil, fmt.Errorf("create account %s: empty password", address)
	}
	hash, err := s.auth.hash(n.Password)
	if err != nil {
		return nil, fmt.Errorf("create account %s: %w", address, err)
	}
	var a *Account
	err = s.write(ctx, func(t *Tx) error {
		var taken int
		if err := t.queryRow("SELECT count(*) FROM aliases WHERE address = ?", address).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			return ErrExists
		}
		if !n.TombstonesSince.IsZero() {
			var deleted int64
			err := t.queryRow("SELECT deleted FROM tombstones WHERE address = ?", address).Scan(&deleted)
			if err == nil && deleted >= n.TombstonesSince.Unix() {
				return ErrTombstoned
			}
		}
		var aerr error
		a, aerr = t.addAccount(address, domain, hash, s.now())
		if aerr != nil {
			return aerr
		}
		if n.EnforceE2EEIncoming {
			if _, err := t.exec("UPDATE accounts SET enforce_e2ee_incoming = 1 WHERE id = ?", a.ID); err != nil {
				return err
			}
			a.EnforceE2EEIncoming = true
		}
		if n.QuotaBytes > 0 {
			if _, err := t.exec("UPDATE accounts SET quota_bytes = ? WHERE id = ?", n.QuotaBytes, a.ID); err != nil {
				return err
			}
			a.Quota = n.QuotaBytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create account %s: %w", address, err)
	}
	// Its first login is now: the password was just checked by being set.
	s.auth.remember(hash, n.Password)
	return a, nil
}

// SetEnforceE2EEIncoming changes an account's flag (spec §6.3, admin-editable).
func (s *Store) SetEnforceE2EEIncoming(ctx context.Context, address string, on bool) error {
	address = Normalize(address)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE accounts SET enforce_e2ee_incoming = ? WHERE address = ?", on, address)
	})
	if err != nil {
		return fmt.Errorf("set enforce_e2ee_incoming of %s: %w", address, err)
	}
	return nil
}

// PushToken is a device token an account registered (chatmail spec §9).
type PushToken struct {
	Token   string
	LastSet time.Time
}

// AddPushToken adds a token to an account's set, or refreshes its time. The set
// keeps at most max tokens (0: no bound), evicting those set longest ago.
func (s *Store) AddPushToken(ctx context.Context, accountID int64, token string, now time.Time, max int) error {
	err := s.write(ctx, func(t *Tx) error {
		if _, err := t.exec("INSERT INTO push_tokens (account_id, token, last_set) VALUES (?, ?, ?) ON CONFLICT (account_id, token) DO UPDATE SET last_set = excluded.last_set",
			accountID, token, now.Unix()); err != nil {
			return err
		}
		if max > 0 {
			if _, err := t.exec(`DELETE FROM push_tokens WHERE account_id = ? AND token NOT IN
				(SELECT token FROM push_tokens WHERE account_id = ? ORDER BY last_set DESC, token LIMIT ?)`, accountID, accountID, max); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add push token: %w", err)
	}
	return nil
}

// PushTokens lists an account's tokens, oldest first.
func (s *Store) PushTokens(ctx context.Context, accountID int64) ([]PushToken, error) {
	return collect(ctx, s, "list push tokens", "SELECT token, last_set FROM push_tokens WHERE account_id = ? ORDER BY last_set, token", func(r rowScanner) (PushToken, error) {
		var p PushToken
		var set int64
		err := r.Scan(&p.Token, &set)
		p.LastSet = time.Unix(set, 0)
		return p, err
	}, accountID)
}

// DeletePushToken removes one token (expired, or refused by the notifier with 410).
func (s *Store) DeletePushToken(ctx context.Context, accountID int64, token string) error {
	err := s.write(ctx, func(t *Tx) error {
		_, err := t.exec("DELETE FROM push_tokens WHERE account_id = ? AND token = ?", accountID, token)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete push token: %w", err)
	}
	return nil
}

// AddressTaken reports whether an address is an account, an alias (exactly: a
// catch-all does not count) or a tombstone, so that /new hands out only names a
// first login can claim.
func (s *Store) AddressTaken(ctx context.Context, address string) (bool, error) {
	address = Normalize(address)
	var n int
	err := s.readRow(ctx, `SELECT (SELECT count(*) FROM accounts WHERE address = ?) + (SELECT count(*) FROM aliases WHERE address = ?)
		+ (SELECT count(*) FROM tombstones WHERE address = ?)`, address, address, address).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up address: %w", err)
	}
	return n > 0, nil
}

// SetCOIFiling changes an account's opt-in to COI filing (coi spec §7.3).
func (s *Store) SetCOIFiling(ctx context.Context, address string, on bool) error {
	address = Normalize(address)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE accounts SET coi_filing = ? WHERE address = ?", on, address)
	})
	if err != nil {
		return fmt.Errorf("set coi_filing of %s: %w", address, err)
	}
	return nil
}
