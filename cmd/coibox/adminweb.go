package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/queue"
	"github.com/coibox/coibox/store"
	"github.com/coibox/coibox/tlsmgr"
	"github.com/coibox/coibox/webadmin"
)

// adminDashboard gathers the admin dashboard's figures from the parts serve wired.
func adminDashboard(cfg *config.Config, s *store.Store, tlsm *tlsmgr.Manager, lns *listeners, started time.Time) func(context.Context) (*webadmin.Dashboard, error) {
	return func(ctx context.Context) (*webadmin.Dashboard, error) {
		st, err := s.Stats(ctx)
		if err != nil {
			return nil, err
		}
		n, oldest, err := s.QueueSummary(ctx)
		if err != nil {
			return nil, err
		}
		d := &webadmin.Dashboard{
			Version: versionString(), Started: started,
			Domains: st.Domains, Accounts: st.Accounts, Messages: st.Messages,
			QueueEntries: n, QueueOldest: oldest, Warnings: tlsm.Warnings(),
		}
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(filepath.Join(cfg.DataDir, store.DBFile+suffix)); err == nil {
				d.DatabaseBytes += fi.Size()
			}
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(cfg.DataDir, &fs); err == nil {
			d.DiskFreeBytes = int64(fs.Bavail) * int64(fs.Bsize)
		}
		for _, name := range lns.names {
			if ln := lns.get(name); ln != nil {
				d.Listeners = append(d.Listeners, webadmin.Listener{Name: name, Addr: ln.Addr().String()})
			}
		}
		for _, c := range tlsm.Status() {
			d.Certificates = append(d.Certificates, webadmin.Certificate{Names: c.Names, Issuer: c.Issuer, NotAfter: c.NotAfter,
				Fallback: c.Fallback, LastError: c.LastError})
		}
		return d, nil
	}
}

// adminSetupURL makes a one-time setup token when no admin password is set yet and
// returns the first-run page's URL on base ("" when set up already).
func adminSetupURL(ctx context.Context, s *store.Store, dataDir, base string) (string, error) {
	done, err := s.HasAdmin(ctx)
	if err != nil || done {
		return "", err
	}
	token, err := webadmin.NewSetupToken(dataDir)
	if err != nil {
		return "", err
	}
	return base + "/admin/setup?token=" + token, nil
}

// adminBase is the admin page's address: the hostname over HTTPS, or the HTTP
// listener when there is no HTTPS (the local profile).
func adminBase(cfg *config.Config) string {
	if cfg.Listen.HTTPS != "" {
		if p := listenPort(cfg.Listen.HTTPS); p != 443 {
			return "https://" + cfg.Hostname + ":" + strconv.Itoa(p)
		}
		return "https://" + cfg.Hostname
	}
	return "http://" + cfg.Listen.HTTP
}

// cmdAdmin is `coibox admin setup-link` (a new one-time link to the first-run page,
// while no admin password is set) and `coibox admin passwd` (set the web admin's
// password from stdin, as for accounts, which also ends every admin session: the
// way back in when the password is lost).
func cmdAdmin(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("admin")
	fs.StringVar(&configPath, "config", configPath, "config file")
	verb, _, err := subcommand(fs, args, map[string][2]int{"setup-link": {0, 0}, "passwd": {0, 0}})
	if err != nil {
		return err
	}
	cfg, source, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	var password string
	var generated bool
	if verb == "passwd" {
		if password, generated, err = readPassword(e.stdin); err != nil {
			return err
		}
		if n := len([]rune(password)); !generated && n < webadmin.MinAdminPassword {
			return fmt.Errorf("admin passwd: the password has %d characters, fewer than %d", n, webadmin.MinAdminPassword)
		}
	}
	return withConfigStore(ctx, cfg, source, func(cfg *config.Config, s *store.Store) error {
		switch verb {
		case "setup-link":
			u, err := adminSetupURL(ctx, s, cfg.DataDir, adminBase(cfg))
			if err != nil {
				return err
			}
			if u == "" {
				return errors.New("admin setup-link: the admin password is set already; coibox admin passwd sets a new one")
			}
			fmt.Fprintf(e.stdout, "%s\n(works once)\n", u)
		case "passwd":
			hash, err := store.HashPassword(password)
			if err != nil {
				return err
			}
			if err := s.SetAdminPassword(ctx, hash); err != nil {
				return err
			}
			if err := s.Audit(ctx, store.AuditEntry{Actor: "coibox admin passwd", Remote: "local", Action: "password set"}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "set the admin password; every admin session has ended")
			if generated {
				fmt.Fprintf(e.stdout, "password: %s\n", password)
			}
		}
		return nil
	})
}

// adminManage gives the admin page's domain and account pages the rules the commands
// use (serveDomain, addAccount, the DNS plan), so that both change the server alike.
func adminManage(cfg *config.Config, s *store.Store, q *queue.Queue) *webadmin.Manage {
	return &webadmin.Manage{
		Queue: q,
		QueueHeaders: func(ctx context.Context, id int64) (*webadmin.QueueHeaders, error) {
			e, err := q.Show(ctx, id)
			if err != nil {
				return nil, err
			}
			return &webadmin.QueueHeaders{From: e.From, Subject: e.Subject, Size: e.Size}, nil
		},
		Store: s,
		AddDomain: func(ctx context.Context, name string, chatmail bool) (string, error) {
			n, err := store.CheckDomainName(name)
			if err != nil {
				return "", err
			}
			_, records, err := serveDomain(ctx, cfg, s, n, chatmail)
			return records, err
		},
		DNSRecords: func(ctx context.Context, name string) (string, error) {
			d, err := s.Domain(ctx, name)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			err = printDNSRecords(&b, cfg, d)
			return b.String(), err
		},
		AddAccount: func(ctx context.Context, address, password string) error {
			addr, err := store.CheckAddress(address)
			if err != nil {
				return err
			}
			return addAccount(ctx, s, addr, password)
		},
		NewPassword: func() (string, error) { return generatePassword(20) },
	}
}
