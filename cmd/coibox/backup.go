package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/coibox/coibox/coi/webpush"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/store"
)

// backupDirs are the data directory's folders and files that hold state outside the
// database: certificates and DKIM keys (losing them means new keys and a DNS change),
// the TURN secret (losing it invalidates the call credentials clients hold), and the
// WebPush VAPID key (losing it orphans every subscription).
var backupDirs = []string{"tls", "dkim", "turn.secret", webpush.KeyFileName}

func cmdBackup(ctx context.Context, e *env, configPath string, args []string) error {
	fset := newFlagSet("backup")
	fset.StringVar(&configPath, "config", configPath, "config file")
	pos, err := parseArgs(fset, args, 1, 1)
	if err != nil {
		return err
	}
	dst := pos[0]
	cfg, source, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(dst); err == nil {
		if data, err := filepath.Abs(cfg.DataDir); err == nil && isInside(abs, data) {
			return fmt.Errorf("backup: %s is inside the data directory %s; choose a directory elsewhere", dst, cfg.DataDir)
		}
	}
	if err := requireDataDir(cfg, source); err != nil {
		return err
	}
	s, _, err := openStore(ctx, cfg, source, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	db, err := s.Backup(ctx, dst)
	if err != nil {
		return err
	}
	fi, err := os.Stat(db)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (%s, consistent copy of the database)\n", db, human.Bytes(fi.Size()))
	for _, name := range backupDirs {
		src := filepath.Join(cfg.DataDir, name)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		n, err := copyTree(src, filepath.Join(dst, name))
		if err != nil {
			return fmt.Errorf("backup %s: %w", name, err)
		}
		fmt.Fprintf(e.stdout, "wrote %s (%d files)\n", filepath.Join(dst, name), n)
	}
	return s.Close()
}

func isInside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}

// copyTree copies the regular files under src to dst keeping their permission bits,
// which matters for private keys (os.CopyFS would widen them to 0666 less umask).
// It refuses to overwrite, like store.Backup.
func copyTree(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case !info.Mode().IsRegular():
			return nil // sockets, symlinks: not state worth keeping
		}
		if err := copyFile(path, target, info.Mode().Perm()); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	// A backup that is not on disk when the command says "wrote" is not a backup.
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return out.Close()
}

func cmdVerify(ctx context.Context, e *env, configPath string, args []string) error {
	fset := newFlagSet("verify")
	fset.StringVar(&configPath, "config", configPath, "config file")
	if _, err := parseArgs(fset, args, 0, 0); err != nil {
		return err
	}
	return withStore(ctx, configPath, func(_ *config.Config, s *store.Store) error {
		probs, err := s.Verify(ctx)
		if err != nil {
			return err
		}
		if len(probs) > 0 {
			fmt.Fprintf(e.stdout, "store %s has %d problems:\n", s.Path(), len(probs))
			for _, p := range probs {
				fmt.Fprintf(e.stdout, "  - %s\n", p)
			}
			return fmt.Errorf("verify: %d problems found in %s", len(probs), s.Path())
		}
		st, err := s.Stats(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "store is consistent: %d accounts, %d messages\n", st.Accounts, st.Messages)
		return nil
	})
}

// cmdRestore is `coibox restore [--force] DIR`: it puts a backup made by `coibox
// backup` back as the data directory's state. The server must be stopped (restore
// takes its lock). The backup is checked first (it opens, its schema is one this
// coibox reads, it is consistent); a data directory that already holds a database is
// only replaced with --force, and then what it held is moved aside, never deleted.
func cmdRestore(ctx context.Context, e *env, configPath string, args []string) error {
	fset := newFlagSet("restore")
	fset.StringVar(&configPath, "config", configPath, "config file")
	force := fset.Bool("force", false, "replace the data directory's database, moving it aside")
	pos, err := parseArgs(fset, args, 1, 1)
	if err != nil {
		return err
	}
	src := pos[0]
	cfg, _, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(src, store.DBFile)); err != nil {
		return fmt.Errorf("restore: %s is not a backup made by coibox backup: %w", src, err)
	}
	// Check the backup on a scratch copy: opening may migrate, which must not touch
	// the backup itself.
	scratch, err := os.MkdirTemp("", "coibox-restore-check")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(scratch)
	if err := copyFile(filepath.Join(src, store.DBFile), filepath.Join(scratch, store.DBFile), 0o600); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkStore(ctx, scratch); err != nil {
		return fmt.Errorf("restore: the backup in %s is not usable: %w", src, err)
	}

	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	names := append([]string{store.DBFile, store.DBFile + "-wal", store.DBFile + "-shm"}, backupDirs...)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, store.DBFile)); err == nil {
		if !*force {
			return fmt.Errorf("restore: %s already holds a database; --force replaces it (moving the current state aside, not deleting it)", cfg.DataDir)
		}
		aside := filepath.Join(cfg.DataDir, "before-restore-"+time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Mkdir(aside, 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		for _, n := range names {
			if err := os.Rename(filepath.Join(cfg.DataDir, n), filepath.Join(aside, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("restore: move %s aside: %w", n, err)
			}
		}
		fmt.Fprintf(e.stdout, "moved the current state aside to %s\n", aside)
	}
	for _, n := range append([]string{store.DBFile}, backupDirs...) {
		from := filepath.Join(src, n)
		fi, err := os.Stat(from)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if fi.IsDir() {
			if _, err := copyTree(from, filepath.Join(cfg.DataDir, n)); err != nil {
				return fmt.Errorf("restore %s: %w", n, err)
			}
		} else if err := copyFile(from, filepath.Join(cfg.DataDir, n), fi.Mode().Perm()|0o600); err != nil {
			return fmt.Errorf("restore %s: %w", n, err)
		}
		fmt.Fprintf(e.stdout, "restored %s\n", n)
	}
	return checkStore(ctx, cfg.DataDir)
}

// checkStore opens the store in dir (migrating it if it is older) and verifies it.
func checkStore(ctx context.Context, dir string) error {
	s, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	probs, err := s.Verify(ctx)
	if err == nil && len(probs) > 0 {
		err = fmt.Errorf("%d problems, the first: %s", len(probs), probs[0])
	}
	return errors.Join(err, s.Close())
}
