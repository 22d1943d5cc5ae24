package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNotFound: no such domain, account, alias, mailbox or message.
	ErrNotFound = errors.New("not found")
	// ErrExists: the name is taken.
	ErrExists = errors.New("already exists")
	// ErrAuthFailed: unknown account or wrong password; callers must not tell which.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrNotLocal: the address's domain is not served here.
	ErrNotLocal = errors.New("domain not served here")
	// ErrNotEmpty: a domain still has accounts.
	ErrNotEmpty = errors.New("not empty")
)

// Domain is a mail domain served by coibox.
type Domain struct {
	ID       int64
	Name     string
	Chatmail bool
	// Profile is the domain's settings as package coi/profile encodes them; "" means
	// the defaults for Chatmail.
	Profile string
	Created time.Time
}

// Account is a mailbox owner who logs in with an address and a password.
type Account struct {
	ID        int64
	Address   string
	DomainID  int64
	Quota     int64 // bytes; -1: the server default; 0: unlimited
	QuotaMsgs int64 // 0: unlimited
	UsedBytes int64
	UsedMsgs  int64
	// EnforceE2EEIncoming refuses cleartext mail to this account (chatmail).
	EnforceE2EEIncoming bool
	COIFiling           bool
	LastLogin           time.Time // day granularity
	Created             time.Time
}

// Alias maps an address, or "@domain" for a catch-all, to a destination address.
type Alias struct {
	Address     string
	Destination string
}

// DefaultMailboxes every account has, with their special-use attributes.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// Normalize lower-cases an address: local accounts compare case-insensitively.
func Normalize(address string) string { return strings.ToLower(strings.TrimSpace(address)) }

// SplitAddress returns the local part and the domain of a normalized address.
func SplitAddress(address string) (local, domain string, err error) {
	i := strings.LastIndexByte(address, '@')
	if i <= 0 || i == len(address)-1 {
		return "", "", fmt.Errorf("%q is not an address of the form user@domain", address)
	}
	return address[:i], address[i+1:], nil
}

func unix(t time.Time) int64 { return t.Unix() }

// AddDomain starts serving a domain.
func (s *Store) AddDomain(ctx context.Context, name string, chatmail bool) (*Domain, error) {
	name, err := CheckDomainName(name)
	if err != nil {
		return nil, fmt.Errorf("add domain: %w", err)
	}
	d := &Domain{Name: name, Chatmail: chatmail, Created: s.now().Truncate(time.Second)}
	err = s.write(ctx, func(t *Tx) error {
		res, err := t.exec("INSERT INTO domains (name, chatmail, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", name, chatmail, unix(d.Created))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrExists
		}
		d.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add domain %s: %w", name, err)
	}
	return d, nil
}

// DeleteDomain stops serving a domain; it refuses while accounts exist unless force.
func (s *Store) DeleteDomain(ctx context.Context, name string, force bool) error {
	name = Normalize(name)
	err := s.write(ctx, func(t *Tx) error {
		var id, n int64
		if err := t.queryRow("SELECT id, (SELECT count(*) FROM accounts WHERE domain_id = domains.id) FROM domains WHERE name = ?", name).Scan(&id, &n); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if n > 0 && !force {
			return fmt.Errorf("%w: %d accounts remain", ErrNotEmpty, n)
		}
		rows, err := t.query("SELECT id FROM accounts WHERE domain_id = ?", id)
		if err != nil {
			return err
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return err
		}
		for _, aid := range ids {
			if err := t.deleteAccount(aid); err != nil {
				return err
			}
		}
		if _, err := t.exec("DELETE FROM aliases WHERE address LIKE ? ESCAPE '\\'", "%@"+escapeLike(name)); err != nil {
			return err
		}
		_, err = t.exec("DELETE FROM domains WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete domain %s: %w", name, err)
	}
	return nil
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

const domainCols = "id, name, chatmail, profile, created"

func scanDomain(r rowScanner) (*Domain, error) {
	var d Domain
	var created int64
	if err := r.Scan(&d.ID, &d.Name, &d.Chatmail, &d.Profile, &created); err != nil {
		return nil, err
	}
	d.Created = time.Unix(created, 0)
	return &d, nil
}

// Domains lists the served domains by name.
func (s *Store) Domains(ctx context.Context) ([]Domain, error) {
	return collect(ctx, s, "list domains", "SELECT "+domainCols+" FROM domains ORDER BY name", deref(scanDomain))
}

// Domain looks a served domain up by name.
func (s *Store) Domain(ctx context.Context, name string) (*Domain, error) {
	return readOne(ctx, s, "look up domain", scanDomain, "SELECT "+domainCols+" FROM domains WHERE name = ?", Normalize(name))
}

// DomainByID looks a served domain up by id.
func (s *Store) DomainByID(ctx context.Context, id int64) (*Domain, error) {
	return readOne(ctx, s, "look up domain", scanDomain, "SELECT "+domainCols+" FROM domains WHERE id = ?", id)
}

// SetDomainProfile replaces a domain's chatmail flag and profile text.
func (s *Store) SetDomainProfile(ctx context.Context, name string, chatmail bool, profile string) error {
	name = Normalize(name)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE domains SET chatmail = ?, profile = ? WHERE name = ?", chatmail, profile, name)
	})
	if err != nil {
		return fmt.Errorf("set profile of domain %s: %w", name, err)
	}
	return nil
}

// AddAccount creates an account with its default mailboxes. The domain must be served.
func (s *Store) AddAccount(ctx context.Context, address, password string) (*Account, error) {
	address, err := CheckAddress(address)
	if err != nil {
		return nil, fmt.Errorf("add account: %w", err)
	}
	_, domain, _ := SplitAddress(address)
	if password == "" {
		return nil, fmt.Errorf("add account %s: empty password", address)
	}
	hash, err := s.auth.hash(password)
	if err != nil {
		return nil, fmt.Errorf("add account %s: %w", address, err)
	}
	var a *Account
	err = s.write(ctx, func(t *Tx) error {
		var derr error
		a, derr = t.addAccount(address, domain, hash, s.now())
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("add account %s: %w", address, err)
	}
	return a, nil
}

func (t *Tx) addAccount(address, domain, hash string, now time.Time) (*Account, error) {
	var domainID int64
	if err := t.queryRow("SELECT id FROM domains WHERE name = ?", domain).Scan(&domainID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("domain %s is not served here (add it first): %w", domain, ErrNotLocal)
		}
		return nil, err
	}
	res, err := t.exec("INSERT INTO accounts (address, domain_id, password_hash, created) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", address, domainID, hash, unix(now))
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrExists
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	for _, mb := range DefaultMailboxes {
		if _, err := t.createMailbox(id, mb.Name, mb.SpecialUse, now); err != nil {
			return nil, err
		}
	}
	t.touch(id)
	return &Account{ID: id, Address: address, DomainID: domainID, Quota: -1, Created: now.Truncate(time.Second)}, nil
}

// DeleteAccount removes an account, its mailboxes, messages and metadata.
func (s *Store) DeleteAccount(ctx context.Context, address string) error {
	address = Normalize(address)
	err := s.write(ctx, func(t *Tx) error {
		var id int64
		if err := t.queryRow("SELECT id FROM accounts WHERE address = ?", address).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if err := t.deleteAccount(id); err != nil {
			return err
		}
		_, err := t.exec("INSERT OR REPLACE INTO tombstones (address, deleted) VALUES (?, ?)", address, unix(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("delete account %s: %w", address, err)
	}
	return nil
}

func (t *Tx) deleteAccount(id int64) error {
	rows, err := t.query("SELECT id FROM mailboxes WHERE account_id = ?", id)
	if err != nil {
		return err
	}
	boxes, err := scanIDs(rows)
	if err != nil {
		return err
	}
	// Release body references first; ON DELETE CASCADE would drop message rows
	// without touching the refcounts.
	if _, err := t.exec(`UPDATE bodies SET refcount = refcount - (SELECT count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE m.body_id = bodies.id AND b.account_id = ?)
		WHERE id IN (SELECT m.body_id FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.account_id = ?)`, id, id); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM expunged WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?)", id); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM metadata WHERE account_id = ?", id); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM accounts WHERE id = ?", id); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM bodies WHERE refcount <= 0"); err != nil {
		return err
	}
	t.removedAccount(id, boxes)
	t.touch(id)
	return nil
}

// SetPassword replaces an account's password.
func (s *Store) SetPassword(ctx context.Context, address, password string) error {
	address = Normalize(address)
	if password == "" {
		return fmt.Errorf("set password for %s: empty password", address)
	}
	hash, err := s.auth.hash(password)
	if err != nil {
		return fmt.Errorf("set password for %s: %w", address, err)
	}
	err = s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE accounts SET password_hash = ? WHERE address = ?", hash, address)
	})
	if err != nil {
		return fmt.Errorf("set password for %s: %w", address, err)
	}
	return nil
}

const accountCols = "id, address, domain_id, quota_bytes, quota_msgs, used_bytes, used_msgs, enforce_e2ee_incoming, coi_filing, last_login_day, created"

func scanAccount(row rowScanner) (*Account, error) {
	var a Account
	var day, created int64
	if err := row.Scan(&a.ID, &a.Address, &a.DomainID, &a.Quota, &a.QuotaMsgs, &a.UsedBytes, &a.UsedMsgs, &a.EnforceE2EEIncoming, &a.COIFiling, &day, &created); err != nil {
		return nil, err
	}
	if day > 0 {
		a.LastLogin = time.Unix(day*86400, 0).UTC()
	}
	a.Created = time.Unix(created, 0)
	return &a, nil
}

// Accounts lists every account by address.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	return collect(ctx, s, "list accounts", "SELECT "+accountCols+" FROM accounts ORDER BY address", deref(scanAccount))
}

// AccountsPage returns the accounts whose address contains search (any case; ""
// for all), in address order, limit of them from offset, and how many match in all:
// the admin page's table, which must not read 10,000 rows to show 50.
func (s *Store) AccountsPage(ctx context.Context, search string, offset, limit int) ([]Account, int, error) {
	pattern := "%" + escapeLike(strings.ToLower(search)) + "%"
	var total int
	if err := s.readRow(ctx, `SELECT count(*) FROM accounts WHERE address LIKE ? ESCAPE '\'`, pattern).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count accounts: %w", err)
	}
	page, err := collect(ctx, s, "list accounts", "SELECT "+accountCols+` FROM accounts WHERE address LIKE ? ESCAPE '\' ORDER BY address LIMIT ? OFFSET ?`,
		deref(scanAccount), pattern, limit, offset)
	return page, total, err
}

// AccountCounts counts the accounts of each domain, by domain id.
func (s *Store) AccountCounts(ctx context.Context) (map[int64]int, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT domain_id, count(*) FROM accounts GROUP BY domain_id")
	if err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count accounts: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// Account looks an account up by address.
func (s *Store) Account(ctx context.Context, address string) (*Account, error) {
	return readOne(ctx, s, "look up account", scanAccount, "SELECT "+accountCols+" FROM accounts WHERE address = ?", Normalize(address))
}

// AccountByID looks an account up by id.
func (s *Store) AccountByID(ctx context.Context, id int64) (*Account, error) {
	return readOne(ctx, s, "look up account", scanAccount, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id)
}

// Authenticate checks a login. Unknown accounts and wrong passwords both give
// ErrAuthFailed, after the same amount of work, so neither can be told apart by timing.
func (s *Store) Authenticate(ctx context.Context, address, password string) (*Account, error) {
	address = Normalize(address)
	var hash string
	err := s.readRow(ctx, "SELECT password_hash FROM accounts WHERE address = ?", address).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		s.auth.spend(password)
		return nil, ErrAuthFailed
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	ok, err := s.auth.check(hash, password)
	if err != nil {
		return nil, fmt.Errorf("authenticate %s: %w", address, err)
	}
	if !ok {
		return nil, ErrAuthFailed
	}
	a, err := s.Account(ctx, address)
	if err != nil {
		return nil, err
	}
	if day := s.now().Unix() / 86400; a.LastLogin.Unix()/86400 != day {
		// Day granularity: at most one write per account and day, off the login path.
		go func() {
			_ = s.write(context.Background(), func(t *Tx) error {
				_, err := t.exec("UPDATE accounts SET last_login_day = ? WHERE id = ?", day, a.ID)
				return err
			})
		}()
	}
	return a, nil
}

// AddAlias adds a destination to an alias. address may be "@domain" (catch-all).
func (s *Store) AddAlias(ctx context.Context, address, destination string) error {
	address, destination = Normalize(address), Normalize(destination)
	_, domain, err := SplitAddress(strings.Replace(address, "@", "x@", 1))
	if err != nil {
		return fmt.Errorf("add alias: %w", err)
	}
	if strings.HasPrefix(address, "@") { // a catch-all: the domain alone
		if domain, err = CheckDomainName(domain); err != nil {
			return fmt.Errorf("add alias: %w", err)
		}
		address = "@" + domain
	} else if address, err = CheckAddress(address); err != nil {
		return fmt.Errorf("add alias: %w", err)
	}
	_, domain, _ = SplitAddress(strings.Replace(address, "@", "x@", 1))
	if destination, err = CheckAddress(destination); err != nil {
		return fmt.Errorf("add alias: destination: %w", err)
	}
	err = s.write(ctx, func(t *Tx) error {
		var n int
		if err := t.queryRow("SELECT count(*) FROM domains WHERE name = ?", domain).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %s is not served here (add it first): %w", domain, ErrNotLocal)
		}
		if err := t.queryRow("SELECT count(*) FROM accounts WHERE address = ?", address).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s is an account: %w", address, ErrExists)
		}
		res, err := t.exec("INSERT INTO aliases (address, destination) VALUES (?, ?) ON CONFLICT DO NOTHING", address, destination)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add alias %s → %s: %w", address, destination, err)
	}
	return nil
}

// DeleteAlias removes one destination, or every destination when destination is "".
func (s *Store) DeleteAlias(ctx context.Context, address, destination string) error {
	address, destination = Normalize(address), Normalize(destination)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("DELETE FROM aliases WHERE address = ? AND (? = '' OR destination = ?)", address, destination, destination)
	})
	if err != nil {
		return fmt.Errorf("delete alias %s: %w", address, err)
	}
	return nil
}

// Aliases lists every alias row.
func (s *Store) Aliases(ctx context.Context) ([]Alias, error) {
	return collect(ctx, s, "list aliases", "SELECT address, destination FROM aliases ORDER BY address, destination", func(r rowScanner) (Alias, error) {
		var a Alias
		return a, r.Scan(&a.Address, &a.Destination)
	})
}

// Resolution is where mail for one address goes.
type Resolution struct {
	Accounts []int64  // local accounts
	Forward  []string // addresses elsewhere
}

// Resolve finds where mail to address goes: the account itself, an alias, the account
// or alias without a "+tag", then the domain's catch-all. ErrNotLocal if the domain is
// not served here, ErrNotFound if it is but nobody receives this address.
func (s *Store) Resolve(ctx context.Context, address string) (*Resolution, error) {
	address = Normalize(address)
	local, domain, err := SplitAddress(address)
	if err != nil {
		return nil, err
	}
	if _, err := s.Domain(ctx, domain); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotLocal
		}
		return nil, err
	}
	candidates := []string{address}
	if i := strings.IndexByte(local, '+'); i > 0 {
		candidates = append(candidates, local[:i]+"@"+domain)
	}
	candidates = append(candidates, "@"+domain)
	for _, c := range candidates {
		r, err := s.resolveExact(ctx, c, 0)
		if err != nil {
			return nil, err
		}
		if r != nil {
			return r, nil
		}
	}
	return nil, ErrNotFound
}

// resolveExact follows aliases to accounts, a few levels deep, without loops.
func (s *Store) resolveExact(ctx context.Context, address string, depth int) (*Resolution, error) {
	var id int64
	err := s.readRow(ctx, "SELECT id FROM accounts WHERE address = ?", address).Scan(&id)
	if err == nil {
		return &Resolution{Accounts: []int64{id}}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("resolve %s: %w", address, err)
	}
	rows, err := s.readRows(ctx, "SELECT destination FROM aliases WHERE address = ?", address)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", address, err)
	}
	var dests []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, err
		}
		dests = append(dests, d)
	}
	rows.Close()
	if len(dests) == 0 {
		return nil, nil
	}
	out := &Resolution{}
	seen := map[int64]bool{}
	for _, d := range dests {
		var r *Resolution
		if depth < 5 {
			r, err = s.resolveExact(ctx, d, depth+1)
			if err != nil {
				return nil, err
			}
		}
		if r == nil {
			if _, dom, _ := SplitAddress(d); dom != "" {
				if _, derr := s.Domain(ctx, dom); derr == nil {
					continue // a local address that receives nothing
				}
			}
			out.Forward = append(out.Forward, d)
			continue
		}
		for _, a := range r.Accounts {
			if !seen[a] {
				seen[a] = true
				out.Accounts = append(out.Accounts, a)
			}
		}
		out.Forward = append(out.Forward, r.Forward...)
	}
	return out, nil
}

// MaySendAs reports whether an account may use address as its sender: its own address
// (with or without a +tag) or an alias that delivers to it.
func (s *Store) MaySendAs(ctx context.Context, accountID int64, address string) (bool, error) {
	a, err := s.AccountByID(ctx, accountID)
	if err != nil {
		return false, err
	}
	address = Normalize(address)
	local, domain, err := SplitAddress(address)
	if err != nil {
		return false, nil
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	base := local + "@" + domain
	if address == a.Address || base == a.Address {
		return true, nil
	}
	for _, c := range []string{address, base} {
		r, err := s.resolveExact(ctx, c, 0)
		if err != nil {
			return false, err
		}
		if r != nil {
			for _, id := range r.Accounts {
				if id == accountID {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// SetQuota sets an account's storage quota in bytes (-1: the server default; 0:
// unlimited) and its message-count quota (0: unlimited).
func (s *Store) SetQuota(ctx context.Context, address string, bytes, msgs int64) error {
	address = Normalize(address)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE accounts SET quota_bytes = ?, quota_msgs = ? WHERE address = ?", bytes, msgs, address)
	})
	if err != nil {
		return fmt.Errorf("set quota for %s: %w", address, err)
	}
	return nil
}
