package store

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/mattn/go-sqlite3"
)

func TestStorageFull(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		full bool
	}{
		{"nil", nil, false},
		{"SQLITE_FULL", sqlite3.Error{Code: sqlite3.ErrFull}, true},
		{"wrapped SQLITE_FULL", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{"I/O error with ENOSPC", sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.ENOSPC}, true},
		{"I/O error with EDQUOT", sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EDQUOT}, true},
		{"file write with ENOSPC", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"I/O error with EIO", sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EIO}, false},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"other", errors.New("no"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := storageFull(tc.err)
			if got := errors.Is(err, ErrStorageFull); got != tc.full {
				t.Fatalf("storageFull(%v) = %v: full %v, want %v", tc.err, err, got, tc.full)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("storageFull(%v) = %v lost the cause", tc.err, err)
			}
			if again := storageFull(err); tc.full && again.Error() != err.Error() {
				t.Errorf("marked twice: %v", again)
			}
		})
	}
}
