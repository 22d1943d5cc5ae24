package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/store"
)

// localDomain is the domain the embedded local profile serves from its first start.
const localDomain = "localhost"

// loadConfig resolves the configuration a command runs with (see config.Resolve).
func loadConfig(path string) (*config.Config, string, error) {
	cfg, source, err := config.Resolve(path)
	if err != nil {
		// config errors already name the file and the key.
		return nil, "", err
	}
	return cfg, source, nil
}

// openStore opens the configured store; opts' size and quota fields come from cfg.
// With the local profile a fresh data directory starts out serving the domain
// localhost, so that `coibox account add you@localhost` works as the first command as
// well as after `coibox serve`. fresh reports whether the database did not exist before.
func openStore(ctx context.Context, cfg *config.Config, source string, opts store.Options) (s *store.Store, fresh bool, err error) {
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, store.DBFile))
	fresh = errors.Is(statErr, os.ErrNotExist)
	opts.GroupCommitMax = cfg.Store.GroupCommitMax
	opts.DefaultQuota = int64(cfg.Limits.Quota)
	s, err = store.Open(ctx, cfg.DataDir, opts)
	if err != nil {
		return nil, false, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
	}
	if fresh && source == config.LocalSource {
		if _, err := s.AddDomain(ctx, localDomain, false); err != nil && !errors.Is(err, store.ErrExists) {
			s.Close()
			return nil, false, err
		}
	}
	return s, fresh, nil
}

// requireDataDir refuses to run an admin command on a data directory that does not
// exist: that is a wrong --config or data_dir far more often than a wish for an
// empty server, and creating one silently would hide the mistake. The local profile
// is exempt (its first command may come before its first serve); serve and
// quickstart create the directory.
func requireDataDir(cfg *config.Config, source string) error {
	if source == config.LocalSource {
		return nil
	}
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data directory %s (data_dir of %s) does not exist: coibox serve or coibox quickstart creates it; or is this the wrong config?", cfg.DataDir, source)
	}
	return nil
}

// withStore runs fn with the configuration at configPath and the store it names, and
// closes the store.
func withStore(ctx context.Context, configPath string, fn func(*config.Config, *store.Store) error) error {
	cfg, source, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	return withConfigStore(ctx, cfg, source, fn)
}

// withConfigStore is withStore for a configuration already loaded.
func withConfigStore(ctx context.Context, cfg *config.Config, source string, fn func(*config.Config, *store.Store) error) error {
	if err := requireDataDir(cfg, source); err != nil {
		return err
	}
	return withNewStore(ctx, cfg, source, fn)
}

// withNewStore is withConfigStore that may create the data directory: for serve and
// quickstart only.
func withNewStore(ctx context.Context, cfg *config.Config, source string, fn func(*config.Config, *store.Store) error) error {
	s, _, err := openStore(ctx, cfg, source, store.Options{})
	if err != nil {
		return err
	}
	return errors.Join(fn(cfg, s), s.Close())
}

// subcommand splits "account add x@y --config f" into its verb and the verb's
// positional arguments, with flags parsed into fs wherever they stand.
func subcommand(fs *flag.FlagSet, args []string, verbs map[string][2]int) (string, []string, error) {
	pos, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return "", nil, err
	}
	if len(pos) == 0 {
		return "", nil, usagef("%s: missing subcommand", fs.Name())
	}
	verb, rest := pos[0], pos[1:]
	n, ok := verbs[verb]
	if !ok {
		return "", nil, usagef("%s: unknown subcommand %q", fs.Name(), verb)
	}
	if len(rest) < n[0] {
		return "", nil, usagef("%s %s: missing argument", fs.Name(), verb)
	}
	if n[1] >= 0 && len(rest) > n[1] {
		return "", nil, usagef("%s %s: unexpected argument %q", fs.Name(), verb, rest[n[1]])
	}
	return verb, rest, nil
}

func cmdAccount(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("account")
	fs.StringVar(&configPath, "config", configPath, "config file")
	verb, pos, err := subcommand(fs, args, map[string][2]int{
		"add": {1, 1}, "del": {1, 1}, "delete": {1, 1}, "passwd": {1, 1}, "list": {0, 0}, "set": {2, 10},
	})
	if err != nil {
		return err
	}
	var addr string
	if verb != "list" {
		addr = store.Normalize(pos[0])
		if _, _, err := store.SplitAddress(addr); err != nil {
			return usagef("account %s: %v", verb, err)
		}
		checked, err := store.CheckAddress(pos[0])
		switch {
		case err == nil:
			addr = checked // the domain as stored: internationalized names as A-labels
		case verb == "add":
			return usagef("account add: %v", err)
		}
		// Other verbs take any name as it is: an account made before names were
		// checked must stay reachable.
	}
	cfg, source, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	// Read and check the password before opening the store: a mistake on stdin should
	// change nothing, and creating a data directory for it would be a surprise.
	var password string
	var generated bool
	if verb == "add" || verb == "passwd" {
		if password, generated, err = readPassword(e.stdin); err != nil {
			return err
		}
		if n, min := utf8.RuneCountInString(password), cfg.Limits.PasswordMinLength; !generated && n < min {
			return fmt.Errorf("account %s %s: the password has %d characters, fewer than the %d of limits.password_min_length; give a longer one, or an empty stdin to have one generated",
				verb, addr, n, min)
		}
	}
	return withConfigStore(ctx, cfg, source, func(cfg *config.Config, s *store.Store) error {
		switch verb {
		case "add":
			if err := addAccount(ctx, s, addr, password); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added account %s\n", addr)
			if generated {
				fmt.Fprintf(e.stdout, "password: %s\n", password)
			}
		case "passwd":
			if err := s.SetPassword(ctx, addr, password); err != nil {
				return explain(err, addr)
			}
			fmt.Fprintf(e.stdout, "changed the password of %s\n", addr)
			if generated {
				fmt.Fprintf(e.stdout, "password: %s\n", password)
			}
		case "set":
			return accountSet(ctx, e, s, addr, pos[1:])
		case "del", "delete":
			if err := s.DeleteAccount(ctx, addr); err != nil {
				return explain(err, addr)
			}
			fmt.Fprintf(e.stdout, "deleted account %s and its mail\n", addr)
		case "list":
			accts, err := s.Accounts(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tMESSAGES\tSIZE\tQUOTA\tLAST LOGIN")
			for _, a := range accts {
				quota := "default"
				switch {
				case a.Quota == 0:
					quota = "unlimited"
				case a.Quota > 0:
					quota = human.Bytes(a.Quota)
				}
				last := "never"
				if !a.LastLogin.IsZero() {
					last = a.LastLogin.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", a.Address, a.UsedMsgs, human.Bytes(a.UsedBytes), quota, last)
			}
			return tw.Flush()
		}
		return nil
	})
}

func cmdDomain(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("domain")
	fs.StringVar(&configPath, "config", configPath, "config file")
	chatmail := fs.Bool("chatmail", false, "apply chatmail rules to the domain (domain add)")
	force := fs.Bool("force", false, "delete the domain's accounts too (domain del)")
	verb, pos, err := subcommand(fs, args, map[string][2]int{
		"add": {1, 1}, "del": {1, 1}, "delete": {1, 1}, "list": {0, 0}, "set": {2, 100}, "show": {1, 1},
	})
	if err != nil {
		return err
	}
	if *chatmail && verb != "add" {
		return usagef("domain %s: --chatmail only goes with domain add", verb)
	}
	if *force && verb != "del" && verb != "delete" {
		return usagef("domain %s: --force only goes with domain del", verb)
	}
	var name string
	if len(pos) > 0 {
		switch n, cerr := store.CheckDomainName(pos[0]); {
		case verb == "add" && cerr != nil:
			// Checked before anything is written: a name no other server could send
			// mail to must not get as far as the store or the DKIM keys.
			return usagef("domain add: %v", cerr)
		case verb == "add":
			name = n
		case cerr == nil:
			pos[0] = n // an internationalized name finds its stored A-label form
		}
	}
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		switch verb {
		case "add":
			return domainAdd(ctx, e, cfg, s, name, *chatmail)
		case "del", "delete":
			name := store.Normalize(pos[0])
			if err := s.DeleteDomain(ctx, name, *force); err != nil {
				if errors.Is(err, store.ErrNotEmpty) {
					return fmt.Errorf("domain %s still has accounts; delete them first, or use domain del --force %s to delete them with all their mail", name, name)
				}
				return explain(err, name)
			}
			fmt.Fprintf(e.stdout, "deleted domain %s\n", name)
		case "list":
			doms, err := s.Domains(ctx)
			if err != nil {
				return err
			}
			accts, err := s.Accounts(ctx)
			if err != nil {
				return err
			}
			count := map[int64]int{}
			for _, a := range accts {
				count[a.DomainID]++
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tACCOUNTS\tCHATMAIL\tPROFILE")
			for _, d := range doms {
				cm := "no"
				if d.Chatmail {
					cm = "yes"
				}
				p, err := coi.StoredProfile(&d)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.Name, count[d.ID], cm, p)
			}
			return tw.Flush()
		case "show":
			d, err := s.Domain(ctx, pos[0])
			if err != nil {
				return explain(err, store.Normalize(pos[0]))
			}
			p, err := coi.StoredProfile(d)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			for _, st := range p.Settings() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Key, st.Value, st.Doc)
			}
			return tw.Flush()
		case "set":
			d, err := s.Domain(ctx, pos[0])
			if err != nil {
				return explain(err, store.Normalize(pos[0]))
			}
			p, err := coi.StoredProfile(d)
			if err != nil {
				return err
			}
			var changes []profile.Change
			for _, arg := range pos[1:] {
				c, err := profile.ParseArg(arg)
				if err != nil {
					return usagef("domain set %s: %v", d.Name, err)
				}
				changes = append(changes, c)
			}
			// All or nothing: Set leaves p unchanged when any change is refused.
			if err := p.Set(changes...); err != nil {
				return fmt.Errorf("domain set %s: %w", d.Name, err)
			}
			if err := s.SetDomainProfile(ctx, d.Name, p.Chatmail, p.Encode()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "domain %s: %s\n", d.Name, p)
		}
		return nil
	})
}

func cmdAlias(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("alias")
	fs.StringVar(&configPath, "config", configPath, "config file")
	verb, pos, err := subcommand(fs, args, map[string][2]int{
		"add": {2, 2}, "del": {1, 2}, "delete": {1, 2}, "list": {0, 0},
	})
	if err != nil {
		return err
	}
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		switch verb {
		case "add":
			addr, dest := store.Normalize(pos[0]), store.Normalize(pos[1])
			if err := s.AddAlias(ctx, addr, dest); err != nil {
				return explain(err, addr)
			}
			if strings.HasPrefix(addr, "@") {
				fmt.Fprintf(e.stdout, "added catch-all: mail for unknown addresses at %s goes to %s\n", addr[1:], dest)
			} else {
				fmt.Fprintf(e.stdout, "added alias %s → %s\n", addr, dest)
			}
		case "del", "delete":
			addr, dest := store.Normalize(pos[0]), ""
			if len(pos) == 2 {
				dest = store.Normalize(pos[1])
			}
			if err := s.DeleteAlias(ctx, addr, dest); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					if dest != "" {
						return fmt.Errorf("no alias %s → %s", addr, dest)
					}
					return fmt.Errorf("no alias %s", addr)
				}
				return err
			}
			if dest != "" {
				fmt.Fprintf(e.stdout, "deleted alias %s → %s\n", addr, dest)
			} else {
				fmt.Fprintf(e.stdout, "deleted alias %s\n", addr)
			}
		case "list":
			aliases, err := s.Aliases(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ALIAS\tDESTINATION")
			for _, a := range aliases {
				fmt.Fprintf(tw, "%s\t%s\n", a.Address, a.Destination)
			}
			return tw.Flush()
		}
		return nil
	})
}

// addAccount makes the account addr (its name checked already) with password, with
// what its domain's profile gives new accounts: `account add` and the admin page.
func addAccount(ctx context.Context, s *store.Store, addr, password string) error {
	_, dom, _ := store.SplitAddress(addr)
	d, err := s.Domain(ctx, dom)
	if err != nil {
		return explain(fmt.Errorf("domain %s is not served here (add it first): %w", dom, store.ErrNotLocal), addr)
	}
	p, err := coi.StoredProfile(d)
	if err != nil {
		return err
	}
	if _, err := s.CreateAccount(ctx, coi.NewAccount(p, addr, password)); err != nil {
		return explain(err, addr)
	}
	return nil
}

// domainAdd serves a new domain, all or nothing: the domain, its DKIM keys and the
// DNS records it needs are made before "added" is printed, and a failure on the way
// takes back what was made.
func domainAdd(ctx context.Context, e *env, cfg *config.Config, s *store.Store, name string, chatmail bool) error {
	d, records, err := serveDomain(ctx, cfg, s, name, chatmail)
	if err != nil {
		return err
	}
	kind := "domain"
	if d.Chatmail {
		kind = "chatmail domain"
	}
	fmt.Fprintf(e.stdout, "added %s %s\n\n", kind, d.Name)
	_, err = io.WriteString(e.stdout, records)
	return err
}

// serveDomain is domainAdd without the printing: it returns the domain and its DNS
// records (`domain add`, `quickstart` and the admin page).
func serveDomain(ctx context.Context, cfg *config.Config, s *store.Store, name string, chatmail bool) (*store.Domain, string, error) {
	d, err := s.AddDomain(ctx, name, chatmail)
	if err != nil {
		return nil, "", explain(err, name)
	}
	keyDir := filepath.Join(cfg.DataDir, dkimDir, d.Name)
	_, statErr := os.Stat(keyDir)
	var records bytes.Buffer
	if err := printDNSRecords(&records, cfg, d); err != nil {
		undo := s.DeleteDomain(context.WithoutCancel(ctx), d.Name, false)
		if errors.Is(statErr, os.ErrNotExist) {
			undo = errors.Join(undo, os.RemoveAll(keyDir))
		}
		if undo != nil {
			return nil, "", fmt.Errorf("domain add %s: %w (and taking the domain back failed: %v)", d.Name, err, undo)
		}
		return nil, "", fmt.Errorf("domain add %s: %w; the domain was not added", d.Name, err)
	}
	return d, records.String(), nil
}

// explain turns the store's sentinel errors into messages that say what to do.
func explain(err error, name string) error {
	switch {
	case errors.Is(err, store.ErrNotLocal):
		_, domain, _ := store.SplitAddress(strings.Replace(name, "@", "x@", 1))
		return fmt.Errorf("domain %s is not served here; add it first with: coibox domain add %s", domain, domain)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%s already exists", name)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s does not exist", name)
	}
	return err
}

// maxPasswordInput bounds what readPassword reads, so a mistaken pipe of a large
// file fails quickly instead of being hashed.
const maxPasswordInput = 4096

// readPassword reads the password from stdin: exactly one line, its line ending
// removed. When stdin is a terminal or empty it generates one instead (generated true),
// because echoing a typed password is worse than printing a strong one.
func readPassword(stdin *os.File) (password string, generated bool, err error) {
	if stdin != nil {
		if fi, err := stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
			data, err := io.ReadAll(io.LimitReader(bufio.NewReader(stdin), maxPasswordInput+1))
			if err != nil {
				return "", false, fmt.Errorf("read password from stdin: %w", err)
			}
			if len(data) > maxPasswordInput {
				return "", false, fmt.Errorf("read password from stdin: more than %d bytes", maxPasswordInput)
			}
			line, _ := bytes.CutSuffix(data, []byte("\n"))
			line, _ = bytes.CutSuffix(line, []byte("\r"))
			if bytes.ContainsAny(line, "\r\n") {
				return "", false, errors.New("read password from stdin: expected exactly one line")
			}
			if len(line) > 0 {
				return string(line), false, nil
			}
		}
	}
	p, err := generatePassword(20)
	return p, true, err
}

// passwordAlphabet leaves out characters that are easily misread (0/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// generatePassword returns n characters drawn uniformly from passwordAlphabet
// (about 5.8 bits each, so 20 give some 117 bits).
func generatePassword(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = passwordAlphabet[k.Int64()]
	}
	return string(b), nil
}

// accountSet applies `account set ADDRESS key=value...`: quota (a size, default or
// unlimited), messages (a count or unlimited) and enforce_e2ee_incoming (on or off).
// Every value is checked before anything changes.
func accountSet(ctx context.Context, e *env, s *store.Store, addr string, args []string) error {
	a, err := s.Account(ctx, addr)
	if err != nil {
		return explain(err, addr)
	}
	quota, msgs, enforce, filing := a.Quota, a.QuotaMsgs, a.EnforceE2EEIncoming, a.COIFiling
	for _, arg := range args {
		key, value, ok := strings.Cut(arg, "=")
		if !ok {
			return usagef("account set %s: %q is not key=value", addr, arg)
		}
		switch key {
		case "quota":
			switch value {
			case "default":
				quota = -1
			case "unlimited":
				quota = 0
			default:
				z, err := config.ParseSize(value)
				if err != nil || z <= 0 {
					return usagef("account set %s: quota %q is not a size (e.g. 500MiB), default or unlimited", addr, value)
				}
				quota = int64(z)
			}
		case "messages":
			if value == "unlimited" {
				msgs = 0
				break
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n <= 0 {
				return usagef("account set %s: messages %q is not a positive count or unlimited", addr, value)
			}
			msgs = n
		case "enforce_e2ee_incoming", "coi_filing":
			var on bool
			switch value {
			case "on":
				on = true
			case "off":
			default:
				return usagef("account set %s: %s is on or off, not %q", addr, key, value)
			}
			if key == "coi_filing" {
				filing = on
			} else {
				enforce = on
			}
		default:
			return usagef("account set %s: unknown key %q (quota, messages, enforce_e2ee_incoming, coi_filing)", addr, key)
		}
	}
	// Three writes; if a later one fails, the earlier ones are set back, so that the
	// command changes all or nothing.
	steps := []struct{ apply, undo func() error }{
		{func() error { return s.SetQuota(ctx, addr, quota, msgs) }, func() error { return s.SetQuota(ctx, addr, a.Quota, a.QuotaMsgs) }},
		{func() error { return s.SetEnforceE2EEIncoming(ctx, addr, enforce) }, func() error { return s.SetEnforceE2EEIncoming(ctx, addr, a.EnforceE2EEIncoming) }},
		{func() error { return s.SetCOIFiling(ctx, addr, filing) }, func() error { return s.SetCOIFiling(ctx, addr, a.COIFiling) }},
	}
	for i, st := range steps {
		if err := st.apply(); err != nil {
			for j := i - 1; j >= 0; j-- {
				if uerr := steps[j].undo(); uerr != nil {
					return fmt.Errorf("account set %s: %w (and setting back the earlier changes failed: %v)", addr, err, uerr)
				}
			}
			return fmt.Errorf("account set %s: %w; nothing was changed", addr, err)
		}
	}
	fmt.Fprintf(e.stdout, "account %s: quota=%s messages=%s enforce_e2ee_incoming=%s coi_filing=%s\n", addr, quotaText(quota), countText(msgs), onOff(enforce), onOff(filing))
	return nil
}

func quotaText(q int64) string {
	switch {
	case q < 0:
		return "default"
	case q == 0:
		return "unlimited"
	}
	return human.Bytes(q)
}

func countText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
