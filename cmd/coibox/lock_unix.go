//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the file in the data directory that a running `coibox serve` holds
// locked; it contains the server's process id, for the message a second one prints.
const lockFile = "serve.lock"

// lockDataDir takes the data directory for this process, for as long as it lives
// (the kernel drops the lock when the process ends, however it ends, so a kill -9
// leaves nothing to clean up). A second server on the same directory would deliver
// into the same database without either's IMAP clients hearing of the other's mail,
// so it must not start. Admin commands never take the lock: they work beside a
// running server.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					who = fmt.Sprintf("another coibox serve (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("data directory %s is in use by %s; stop it first, or give this server its own data_dir", dir, who)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is for people; the lock is what counts, so a failure here is not fatal.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
