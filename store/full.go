package store

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// ErrStorageFull: a write failed because the disk (or the file system's quota) is
// full. Nothing of the write was committed; the same write can succeed once space
// returns, so protocols answer it with a temporary refusal (SMTP 452 4.3.1, IMAP NO)
// rather than an internal error.
var ErrStorageFull = errors.New("storage full")

// storageFull marks err with ErrStorageFull when SQLite or the OS says the disk is
// full: SQLITE_FULL, or an I/O error whose errno is ENOSPC or EDQUOT.
func storageFull(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) {
		return err
	}
	var se sqlite3.Error
	full := errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.SystemErrno == syscall.ENOSPC || se.SystemErrno == syscall.EDQUOT)
	if full || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	}
	return err
}
