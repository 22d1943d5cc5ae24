package wire

import (
	"errors"
	"fmt"
)

// Status is the status word of a tagged or untagged status response.
type Status string

// Status words (RFC 9051 §7.1).
const (
	OK      Status = "OK"
	NO      Status = "NO"
	BAD     Status = "BAD"
	BYE     Status = "BYE"
	PREAUTH Status = "PREAUTH"
)

// Error is a protocol error found while reading or parsing a command. It
// carries the response the server sends for it, so the session layer does not
// have to map parser failures to responses itself.
type Error struct {
	// Tag of the command, or "*" when the command's tag could not be read.
	Tag    string
	Status Status // BAD, or NO for a refused APPEND literal
	Code   Code   // optional response code, e.g. CodeTooBig
	Text   string
	// Fatal reports that the input stream can no longer be trusted to be in
	// step with the client (e.g. a refused non-synchronizing literal is on its
	// way): the server sends "* BYE Text" and closes the connection.
	Fatal bool
}

// Error returns the response line the error calls for, without CRLF.
func (e *Error) Error() string {
	tag, st := e.Tag, e.Status
	if e.Fatal {
		tag, st = "*", BYE
	}
	if e.Code != "" {
		return fmt.Sprintf("%s %s [%s] %s", tag, st, e.Code, e.Text)
	}
	return fmt.Sprintf("%s %s %s", tag, st, e.Text)
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// WriteError writes the response that e calls for: a tagged (or untagged)
// status response, or an untagged BYE when the connection must be closed. It
// does not flush.
func (w *Writer) WriteError(e *Error) {
	if e.Fatal {
		w.StatusResponse("*", BYE, e.Code, e.Text)
		return
	}
	tag := e.Tag
	if tag == "" {
		tag = "*"
	}
	w.StatusResponse(tag, e.Status, e.Code, e.Text)
}
