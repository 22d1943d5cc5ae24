package imapd

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

func (s *session) cmdAppend(ctx context.Context, cmd *wire.Command) error {
	aa, err := cmd.Append()
	if err != nil {
		return err
	}
	mb, err := s.srv.st.Mailbox(ctx, s.acc.ID, aa.Mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return no(wire.CodeTryCreate, "No such mailbox")
	}
	if err != nil {
		return err
	}
	if int64(len(aa.Message)) > s.srv.lim.MaxMessageSize {
		return no(wire.CodeTooBig, "Message too large (limit %d bytes)", s.srv.lim.MaxMessageSize)
	}
	flags := make([]string, 0, len(aa.Flags))
	for _, f := range aa.Flags {
		flags = append(flags, string(f))
	}
	validity, uid, err := s.srv.st.Append(ctx, mb.ID, aa.Message, flags, aa.Date)
	if err != nil {
		return s.storeErr(err)
	}
	if s.sel != nil && s.sel.id == mb.ID {
		// Report the new message now, before the tagged OK, as clients expect.
		if err := s.update(ctx, true); err != nil {
			return err
		}
	}
	return okCode(wire.CodeAppendUID(validity, imap.UID(uid)), "APPEND completed")
}

// overQuota explains why size more bytes would not fit the account's quota, or
// returns "" when they fit.
func (s *session) overQuota(ctx context.Context, size int64) string {
	acc, err := s.srv.st.AccountByID(ctx, s.acc.ID)
	if err != nil {
		return "" // the store checks again when appending
	}
	if q := s.srv.st.QuotaLimit(acc); q > 0 && acc.UsedBytes+size > q {
		return fmt.Sprintf("Quota exceeded: %d of %d KiB used", (acc.UsedBytes+1023)/1024, q/1024)
	}
	if acc.QuotaMsgs > 0 && acc.UsedMsgs+1 > acc.QuotaMsgs {
		return fmt.Sprintf("Quota exceeded: %d of %d messages", acc.UsedMsgs, acc.QuotaMsgs)
	}
	return ""
}

func (s *session) cmdGetQuotaRoot(ctx context.Context, cmd *wire.Command) error {
	name, err := cmd.Mailbox()
	if err != nil {
		return err
	}
	if _, err := s.srv.st.Mailbox(ctx, s.acc.ID, name); err != nil {
		return s.storeErr(err)
	}
	res, err := s.quota(ctx)
	if err != nil {
		return err
	}
	w := s.wr()
	if len(res) == 0 {
		// No limit, no quota root (a QUOTA response needs at least one resource).
		w.QuotaRoot(name)
		return nil
	}
	w.QuotaRoot(name, "")
	w.Quota("", res)
	return nil
}

func (s *session) cmdGetQuota(ctx context.Context, cmd *wire.Command) error {
	a := cmd.Args
	if err := a.SP(); err != nil {
		return err
	}
	root, err := a.AString()
	if err != nil {
		return err
	}
	if err := a.End(); err != nil {
		return err
	}
	res, err := s.quota(ctx)
	if err != nil {
		return err
	}
	if root != "" || len(res) == 0 {
		return no(wire.CodeNonExistent, "No such quota root")
	}
	s.wr().Quota("", res)
	return nil
}

func (s *session) cmdSetQuota(context.Context, *wire.Command) error {
	return no(wire.CodeNoPerm, "Quotas are set by the administrator")
}

// quota returns the account's limited resources with their usage; STORAGE is in KiB.
func (s *session) quota(ctx context.Context) ([]wire.QuotaResource, error) {
	acc, err := s.srv.st.AccountByID(ctx, s.acc.ID)
	if err != nil {
		return nil, err
	}
	var res []wire.QuotaResource
	if q := s.srv.st.QuotaLimit(acc); q > 0 {
		res = append(res, wire.QuotaResource{Name: imap.QuotaResourceStorage, Usage: (acc.UsedBytes + 1023) / 1024, Limit: q / 1024})
	}
	if acc.QuotaMsgs > 0 {
		res = append(res, wire.QuotaResource{Name: imap.QuotaResourceMessage, Usage: acc.UsedMsgs, Limit: acc.QuotaMsgs})
	}
	return res, nil
}
