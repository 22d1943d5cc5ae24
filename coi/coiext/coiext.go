package coiext

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coibox/coibox/store"
)

// The configuration entries (coi spec §4), lower case as imapd hands them over.
const (
	Prefix        = "/private/vendor/vendor.dovecot/coi/"
	ConfigPrefix  = Prefix + "config/"
	EntryConfig   = Prefix + "config"
	EntryEnabled  = ConfigPrefix + "enabled"
	EntryFilter   = ConfigPrefix + "message-filter"
	EntryRoot     = ConfigPrefix + "mailbox-root"
	enabledYes    = "yes"
	maxValueShown = 64
)

// Mode is a message-filter value (§7.2).
type Mode string

const (
	ModeNone   Mode = "none"
	ModeActive Mode = "active"
	ModeSeen   Mode = "seen"
)

// Options configure an Ext.
type Options struct {
	Store *store.Store
	// Root is coi.mailbox_root (default "COI").
	Root string
	// FilingDefault is coi.filing_default: whether accounts may file chat mail out of
	// INBOX when their own coi_filing is off. (The store keeps one flag per account;
	// it is or'ed with this default.)
	FilingDefault bool
}

// Ext is the COI extension for one server.
type Ext struct {
	st          *store.Store
	root        string
	fileDefault bool
}

// New returns the extension.
func New(o Options) *Ext {
	if o.Root == "" {
		o.Root = "COI"
	}
	return &Ext{st: o.Store, root: o.Root, fileDefault: o.FilingDefault}
}

// Chats and Contacts are the COI folders' names.
func (x *Ext) Chats() string    { return x.root + store.Separator + "Chats" }
func (x *Ext) Contacts() string { return x.root + store.Separator + "Contacts" }

// Error is a refusal the client sees as NO [CANNOT] Text.
type Error struct{ Text string }

func (e *Error) Error() string { return e.Text }

func unableToSet(entry string) error { return &Error{Text: "unable to set " + entry} }

// invalidValue is §3's refusal of a bad value, quoting it only when that is safe.
func invalidValue(entry, value string) error {
	if len(value) > maxValueShown || strings.ContainsAny(value, "\r\n\x00") {
		return &Error{Text: "invalid value for " + entry}
	}
	return &Error{Text: fmt.Sprintf("invalid value for %s: %q", entry, value)}
}

var errFilingOff = &Error{Text: "COI filing is disabled for this account"}

// Entry is one METADATA entry; a nil Value is NIL.
type Entry struct {
	Name  string
	Value []byte
}

// Get answers a GETMETADATA for names under Prefix (depth 0, 1 or -1 for infinity):
// the stored entries, with mailbox-root always present.
func (x *Ext) Get(ctx context.Context, acc *store.Account, names []string, depth int) ([]Entry, error) {
	all, err := x.entries(ctx, acc.ID)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, name := range names {
		for _, e := range all {
			switch {
			case e.Name == name:
				out = append(out, e)
			case depth != 0 && strings.HasPrefix(e.Name, name+"/"):
				if depth == 1 && strings.Contains(e.Name[len(name)+1:], "/") {
					continue
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// entries are the account's COI entries: the stored ones and mailbox-root.
func (x *Ext) entries(ctx context.Context, accountID int64) ([]Entry, error) {
	stored, err := x.st.Metadata(ctx, accountID, 0, []string{EntryEnabled, EntryFilter}, false)
	if err != nil {
		return nil, fmt.Errorf("read COI configuration: %w", err)
	}
	var out []Entry
	for _, e := range stored {
		out = append(out, Entry{Name: e.Name, Value: e.Value})
	}
	return append(out, Entry{Name: EntryRoot, Value: []byte(x.root)}), nil
}

// Set applies a SETMETADATA of entries under Prefix all or nothing (§3, §4): every
// value is checked first; then the folders enabling needs are made, then the
// entries stored.
func (x *Ext) Set(ctx context.Context, acc *store.Account, entries []Entry) error {
	var store_ []store.MetaEntry
	needChats, needContacts := false, false
	for _, e := range entries {
		v := string(e.Value)
		switch e.Name {
		case EntryEnabled:
			if e.Value != nil && v != enabledYes {
				return invalidValue(e.Name, v)
			}
			if e.Value != nil {
				needChats, needContacts = true, true
			}
		case EntryFilter:
			if e.Value == nil || v == string(ModeNone) {
				break // NIL is none (D7)
			}
			if v != string(ModeActive) && v != string(ModeSeen) {
				return invalidValue(e.Name, v)
			}
			// The session's account was read at login; the admin may have changed
			// the opt-in since (D5: settings apply at once).
			fresh, err := x.st.AccountByID(ctx, acc.ID)
			if err != nil {
				return fmt.Errorf("read COI account: %w", err)
			}
			if !x.filing(fresh) {
				return errFilingOff
			}
			needChats = true
		default:
			return unableToSet(e.Name)
		}
		store_ = append(store_, store.MetaEntry{Name: e.Name, Value: e.Value})
	}
	if needChats {
		if err := x.ensureFolders(ctx, acc.ID, needContacts); err != nil {
			return err
		}
	}
	if err := x.st.SetMetadata(ctx, acc.ID, 0, store_, 0); err != nil {
		return fmt.Errorf("store COI configuration: %w", err)
	}
	return nil
}

// filing reports whether the account may file chat mail out of INBOX (§7.3).
func (x *Ext) filing(acc *store.Account) bool { return acc.COIFiling || x.fileDefault }

// ensureFolders makes <root>/Chats (subscribed) and, if asked, <root>/Contacts (not
// subscribed) where missing (§5).
func (x *Ext) ensureFolders(ctx context.Context, accountID int64, contacts bool) error {
	if _, err := x.st.CreateMailbox(ctx, accountID, x.Chats(), ""); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("make COI folder: %w", err)
	}
	if err := x.st.SetSubscribed(ctx, accountID, x.Chats(), true); err != nil {
		return fmt.Errorf("subscribe COI folder: %w", err)
	}
	if !contacts {
		return nil
	}
	_, err := x.st.CreateMailbox(ctx, accountID, x.Contacts(), "")
	switch {
	case err == nil:
		if err := x.st.SetSubscribed(ctx, accountID, x.Contacts(), false); err != nil {
			return fmt.Errorf("unsubscribe COI folder: %w", err)
		}
	case !errors.Is(err, store.ErrExists):
		return fmt.Errorf("make COI folder: %w", err)
	}
	return nil
}

// Enabled reports whether the account's enabled entry is "yes".
func (x *Ext) Enabled(ctx context.Context, accountID int64) (bool, Mode, error) {
	es, err := x.st.Metadata(ctx, accountID, 0, []string{EntryEnabled, EntryFilter}, false)
	if err != nil {
		return false, ModeNone, fmt.Errorf("read COI configuration: %w", err)
	}
	on, mode := false, ModeNone
	for _, e := range es {
		switch e.Name {
		case EntryEnabled:
			on = string(e.Value) == enabledYes
		case EntryFilter:
			switch Mode(e.Value) {
			case ModeActive, ModeSeen:
				mode = Mode(e.Value)
			}
		}
	}
	return on, mode, nil
}

// disable clears the enabled entry (indirect disabling, §5).
func (x *Ext) disable(ctx context.Context, accountID int64) error {
	if err := x.st.SetMetadata(ctx, accountID, 0, []store.MetaEntry{{Name: EntryEnabled, Value: nil}}, 0); err != nil {
		return fmt.Errorf("disable COI: %w", err)
	}
	return nil
}
