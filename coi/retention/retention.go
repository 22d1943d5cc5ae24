package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/store"
)

const (
	// LargeMessage is the size over which a seen message goes after
	// delete_large_after (§10: 200 kB).
	LargeMessage = int64(200 * config.KB)
	// TrimAbove and TrimTo are percentages of max_mailbox_size: a delivery that takes
	// usage over TrimAbove trims it to TrimTo at once, and the daily job trims every
	// account to TrimTo (§10; below Delta Chat's 80 % warning).
	TrimAbove = 75
	TrimTo    = 70
	// MinAge is the age under which trimming never deletes a message.
	MinAge = 24 * time.Hour
)

// Options configure a Job. Zero values take the defaults noted.
type Options struct {
	Store *store.Store
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Interval is the time between passes of Run (default 24 h).
	Interval time.Duration
	Logger   *slog.Logger
	// Batch is how many messages one write deletes at most (default
	// store.RetentionBatch).
	Batch int
}

// Job applies the retention rules of §10.
type Job struct {
	st   *store.Store
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	trimming map[int64]*trimRun // accounts with a trim under way

	// trimAccount is st.TrimAccount; tests wrap it.
	trimAccount func(ctx context.Context, accountID, target int64, notNewerThan time.Time) (int64, error)

	profMu   sync.Mutex
	profiles map[profileKey]profile.Profile
}

// trimRun is a trim under way; again asks it to look once more when done.
type trimRun struct{ again bool }

// profileKey is what a stored profile decodes from. Decoded profiles are cached by
// their text, never by domain, so a `domain set` takes effect at the next use.
type profileKey struct {
	chatmail bool
	text     string
}

// New returns a Job over opts.Store.
func New(opts Options) *Job {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Batch <= 0 {
		opts.Batch = store.RetentionBatch
	}
	return &Job{
		st:          opts.Store,
		opts:        opts,
		log:         opts.Logger,
		trimming:    map[int64]*trimRun{},
		trimAccount: opts.Store.TrimAccount,
		profiles:    map[profileKey]profile.Profile{},
	}
}

// Run runs a pass at once and then every Options.Interval until ctx ends. A Job
// whose AfterDelivery is wired should run this way rather than through the function
// Run, so that both share the one-trim-per-account rule.
func (j *Job) Run(ctx context.Context) error {
	for {
		if _, err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("retention: pass failed", "err", err)
		}
		t := time.NewTimer(j.opts.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Run runs the daily job of New(opts) until ctx ends.
func Run(ctx context.Context, opts Options) error { return New(opts).Run(ctx) }

// Summary is what one pass did.
type Summary struct {
	Domains         int   // domains with a retention setting on
	Accounts        int   // their accounts looked at
	DeletedAccounts int   // idle accounts deleted
	Expired         int   // messages past delete_mails_after
	Large           int   // large seen messages past delete_large_after
	Trimmed         int   // accounts trimmed
	TrimmedBytes    int64 // bytes the trims freed
	Errors          int   // accounts whose work failed (logged)
	Took            time.Duration
}

// Pass applies every domain's retention settings once, as of Options.Now, and logs a
// summary. The error is for what stops the whole pass (listing domains and accounts,
// ctx); a failure on one account is logged and counted and the pass goes on.
func (j *Job) Pass(ctx context.Context) (Summary, error) {
	start := time.Now()
	now := j.opts.Now()
	var sum Summary
	err := j.pass(ctx, now, &sum)
	sum.Took = time.Since(start)
	j.log.Info("retention: pass done", "domains", sum.Domains, "accounts", sum.Accounts,
		"deleted_accounts", sum.DeletedAccounts, "expired", sum.Expired, "large", sum.Large,
		"trimmed", sum.Trimmed, "trimmed_bytes", sum.TrimmedBytes, "errors", sum.Errors, "took", sum.Took)
	return sum, err
}

func (j *Job) pass(ctx context.Context, now time.Time, sum *Summary) error {
	domains, err := j.st.Domains(ctx)
	if err != nil {
		return fmt.Errorf("retention pass: %w", err)
	}
	var accounts map[int64][]store.Account // by domain, read once the first domain needs them
	for i := range domains {
		d := &domains[i]
		p, err := j.profile(d)
		if err != nil {
			j.log.Error("retention: domain skipped", "domain", d.Name, "err", err)
			sum.Errors++
			continue
		}
		if !hasRetention(p) {
			continue
		}
		sum.Domains++
		if accounts == nil {
			all, err := j.st.Accounts(ctx)
			if err != nil {
				return fmt.Errorf("retention pass: %w", err)
			}
			accounts = map[int64][]store.Account{}
			for _, a := range all {
				accounts[a.DomainID] = append(accounts[a.DomainID], a)
			}
		}
		if err := j.domain(ctx, d, p, accounts[d.ID], now, sum); err != nil {
			return err
		}
	}
	return nil
}

func hasRetention(p profile.Profile) bool {
	return p.DeleteInactiveUsersAfter > 0 || p.DeleteMailsAfter > 0 || p.DeleteLargeAfter > 0 || trims(p)
}

func trims(p profile.Profile) bool { return p.TrimMailbox && p.MaxMailboxSize > 0 }

// domain applies one domain's settings to its accounts: idle ones first, so that no
// work is spent on mail about to go with its account.
func (j *Job) domain(ctx context.Context, d *store.Domain, p profile.Profile, accounts []store.Account, now time.Time, sum *Summary) error {
	gone := map[int64]bool{}
	if p.DeleteInactiveUsersAfter > 0 {
		cut := now.Add(-p.DeleteInactiveUsersAfter)
		idle, err := j.st.InactiveAccounts(ctx, d.ID, cut)
		if err != nil {
			return fmt.Errorf("retention pass: %w", err)
		}
		for i := range idle {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			deleted, err := j.deleteIdle(ctx, &idle[i], cut)
			if err != nil {
				j.log.Error("retention: deleting idle account failed", "account", idle[i].Address, "err", err)
				sum.Errors++
				continue
			}
			if deleted {
				gone[idle[i].ID] = true
				sum.DeletedAccounts++
				j.log.Info("retention: idle account deleted", "account", idle[i].Address, "last_login", idle[i].LastLogin, "created", idle[i].Created)
			}
		}
	}
	for i := range accounts {
		a := &accounts[i]
		if gone[a.ID] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sum.Accounts++
		if err := j.account(ctx, a, p, now, sum); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			j.log.Error("retention: account failed", "account", a.Address, "err", err)
			sum.Errors++
		}
	}
	return nil
}

// account applies the message rules to one account.
func (j *Job) account(ctx context.Context, a *store.Account, p profile.Profile, now time.Time, sum *Summary) error {
	if p.DeleteMailsAfter > 0 {
		n, err := j.drain(ctx, func() (int, error) {
			return j.st.ExpireMessages(ctx, a.ID, now.Add(-p.DeleteMailsAfter), j.opts.Batch)
		})
		sum.Expired += n
		if err != nil {
			return err
		}
	}
	if p.DeleteLargeAfter > 0 {
		n, err := j.drain(ctx, func() (int, error) {
			return j.st.ExpireLargeSeen(ctx, a.ID, now.Add(-p.DeleteLargeAfter), LargeMessage, j.opts.Batch)
		})
		sum.Large += n
		if err != nil {
			return err
		}
	}
	if trims(p) {
		freed, err := j.trim(ctx, a.ID, percent(int64(p.MaxMailboxSize), TrimTo))
		if freed > 0 {
			sum.Trimmed++
			sum.TrimmedBytes += freed
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// drain calls one batch after another until a batch deletes nothing.
func (j *Job) drain(ctx context.Context, batch func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// everything is a date after every message's.
var everything = time.Unix(1<<40, 0)

// deleteIdle empties an idle account in batches and then deletes it, unless it
// logged in (or went, or its address changed hands) meanwhile.
func (j *Job) deleteIdle(ctx context.Context, a *store.Account, cut time.Time) (bool, error) {
	for {
		n, err := j.st.ExpireMessages(ctx, a.ID, everything, j.opts.Batch)
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
		cur, err := j.st.AccountByID(ctx, a.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !idle(cur, cut) {
			j.log.Info("retention: account logged in while being emptied; kept", "account", a.Address)
			return false, nil
		}
	}
	cur, err := j.st.Account(ctx, a.Address)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cur.ID != a.ID || !idle(cur, cut) {
		return false, nil
	}
	if err := j.st.DeleteAccount(ctx, a.Address); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// idle is store.InactiveAccounts' rule for one account.
func idle(a *store.Account, cut time.Time) bool {
	c := cut.Unix()
	if a.Created.Unix() >= c {
		return false
	}
	return a.LastLogin.IsZero() || a.LastLogin.Unix()+86400 <= c
}

// percent is pc % of n, rounded down, without overflow.
func percent(n, pc int64) int64 { return n/100*pc + n%100*pc/100 }

// AfterDelivery applies the immediate rule of §10 to an account that just got a
// message: when its domain trims mailboxes and its usage is over TrimAbove % of
// max_mailbox_size, it trims to TrimTo % now, never deleting mail under MinAge old.
// Under the threshold it costs one read. It may be called concurrently; while a trim
// of the account is under way another call returns at once, and the running trim
// looks again when it is done. An account that no longer exists is no error.
func (j *Job) AfterDelivery(ctx context.Context, accountID int64) error {
	a, d, err := j.st.AccountDomain(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check mailbox size: %w", err)
	}
	p, err := j.profile(d)
	if err != nil {
		return fmt.Errorf("check mailbox size: %w", err)
	}
	if !trims(p) {
		return nil
	}
	size := int64(p.MaxMailboxSize)
	if a.UsedBytes <= percent(size, TrimAbove) {
		return nil
	}
	freed, err := j.trim(ctx, accountID, percent(size, TrimTo))
	if freed > 0 {
		j.log.Info("retention: mailbox trimmed after delivery", "account", a.Address, "used", a.UsedBytes, "freed", freed)
	}
	return err
}

// trim trims an account to target, or, when a trim of it is under way, asks that one
// to look again and returns at once.
func (j *Job) trim(ctx context.Context, accountID, target int64) (int64, error) {
	j.mu.Lock()
	if run := j.trimming[accountID]; run != nil {
		run.again = true
		j.mu.Unlock()
		return 0, nil
	}
	run := &trimRun{}
	j.trimming[accountID] = run
	j.mu.Unlock()
	var freed int64
	for {
		f, err := j.trimAccount(ctx, accountID, target, j.opts.Now().Add(-MinAge))
		freed += f
		j.mu.Lock()
		if err != nil || !run.again || ctx.Err() != nil {
			delete(j.trimming, accountID)
			j.mu.Unlock()
			if err != nil {
				return freed, fmt.Errorf("trim mailbox: %w", err)
			}
			return freed, nil
		}
		run.again = false
		j.mu.Unlock()
	}
}

// profile decodes a domain's profile, caching by its text.
func (j *Job) profile(d *store.Domain) (profile.Profile, error) {
	k := profileKey{chatmail: d.Chatmail, text: d.Profile}
	j.profMu.Lock()
	p, ok := j.profiles[k]
	j.profMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := coi.StoredProfile(d)
	if err != nil {
		return profile.Profile{}, err
	}
	j.profMu.Lock()
	if len(j.profiles) >= 64 {
		clear(j.profiles)
	}
	j.profiles[k] = p
	j.profMu.Unlock()
	return p, nil
}
