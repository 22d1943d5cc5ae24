package imapd

import (
	"context"
	"strings"
	"time"

	"github.com/coibox/coibox/imapd/wire"
)

type lineResult struct {
	line string
	err  error
}

// cmdIdle waits for DONE, reporting changes as they are committed (RFC 2177). While
// idle the session holds no write buffer; a second goroutine reads the DONE line.
func (s *session) cmdIdle(ctx context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	s.wr().Continue("idling")
	if s.sel != nil {
		if err := s.update(ctx, false); err != nil {
			return err
		}
	}
	if err := s.flush(); err != nil {
		return errClose
	}
	s.release()
	lim := s.srv.lim
	_ = s.conn.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
	if s.stopping.Load() {
		s.bye(s.stopReason())
		return errClose
	}
	lines := make(chan lineResult, 1)
	go func() {
		l, err := s.r.ReadLine(ctx)
		lines <- lineResult{l, err}
	}()
	var poke <-chan struct{}
	if s.sel != nil && s.sub != nil {
		poke = s.sub.C
	}
	keep := time.NewTimer(lim.KeepAlive)
	defer keep.Stop()
	// hangUp ends the session from inside IDLE. The reader goroutine must be done
	// before anything reads the connection again, and it only returns once the
	// connection is closed (or DONE arrives).
	hangUp := func(err error) error {
		if err != errClose {
			s.log.Error("imap: IDLE update", "err", err)
		}
		_ = s.conn.Close()
		<-lines
		return errClose
	}
	for {
		select {
		case <-poke:
			if err := s.update(ctx, true); err != nil {
				return hangUp(err)
			}
			if err := s.flush(); err != nil {
				return hangUp(errClose)
			}
			s.release()
		case <-keep.C:
			s.wr().StatusResponse("*", wire.OK, "", "Still here")
			if err := s.flush(); err != nil {
				return hangUp(errClose)
			}
			s.release()
			keep.Reset(lim.KeepAlive)
		case lr := <-lines:
			if lr.err != nil {
				if e, ok := wire.AsError(lr.err); ok {
					e.Tag = cmd.Tag
					return e
				}
				switch {
				case s.stopping.Load():
					s.bye(s.stopReason())
				case isTimeout(lr.err):
					s.bye("Autologout: idle for too long")
				}
				return errClose
			}
			if !strings.EqualFold(strings.TrimSpace(lr.line), "DONE") {
				return bad("Expected DONE to end IDLE")
			}
			return okCode("", "IDLE terminated")
		}
	}
}
