package imapd

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

// metaMailbox resolves a METADATA mailbox argument: "" is the server (id 0).
func (s *session) metaMailbox(ctx context.Context, name string) (int64, error) {
	if name == "" {
		return 0, nil
	}
	mb, err := s.srv.st.Mailbox(ctx, s.acc.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, no(wire.CodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return 0, err
	}
	return mb.ID, nil
}

// owner returns the store account whose entries name is: server-wide /shared
// entries (admin contact, TURN…) belong to store.Server.
func (s *session) owner(mailbox, name string) int64 {
	if mailbox == "" && (name == "/shared" || strings.HasPrefix(name, "/shared/")) {
		return store.Server
	}
	return s.acc.ID
}

func (s *session) cmdGetMetadata(ctx context.Context, cmd *wire.Command) error {
	ga, err := cmd.GetMetadata()
	if err != nil {
		return err
	}
	mbID, err := s.metaMailbox(ctx, ga.Mailbox)
	if err != nil {
		return err
	}
	hook := s.srv.opts.MetadataHook
	var out []wire.MetadataEntry
	seen := map[string]bool{}
	add := func(name string, value []byte, isNil bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, wire.MetadataEntry{Name: name, Value: value, Nil: isNil})
	}
	for _, raw := range ga.Entries {
		name, ok := normalizeEntry(raw)
		if !ok {
			return bad("Invalid entry name %q", clip(raw))
		}
		var found []store.MetaEntry
		if hook != nil && hook.Owns(ga.Mailbox, name) {
			es, err := hook.GetMetadata(ctx, s.acc, ga.Mailbox, []string{name}, ga.Depth)
			if err != nil {
				return hookErr(err)
			}
			for _, e := range es {
				found = append(found, store.MetaEntry{Name: strings.ToLower(e.Name), Value: e.Value})
			}
		} else {
			found, err = s.srv.st.Metadata(ctx, s.owner(ga.Mailbox, name), mbID, []string{name}, ga.Depth != wire.DepthZero)
			if err != nil {
				return err
			}
		}
		sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
		exact := false
		for _, e := range found {
			if e.Name == name {
				exact = true
			}
		}
		if !exact && len(found) == 0 {
			// An explicitly named missing entry is NIL (coi.md §3); one whose
			// descendants answer a DEPTH request is not mentioned (§9).
			add(name, nil, true)
		}
		for _, e := range found {
			if e.Name != name && ga.Depth == wire.DepthOne && strings.Contains(e.Name[len(name)+1:], "/") {
				continue
			}
			if e.Value == nil {
				add(e.Name, nil, true)
				continue
			}
			add(e.Name, e.Value, false)
		}
	}
	var longest int64
	if ga.MaxSize >= 0 {
		k := 0
		for _, e := range out {
			if !e.Nil && int64(len(e.Value)) > ga.MaxSize {
				longest = max(longest, int64(len(e.Value)))
				continue
			}
			out[k] = e
			k++
		}
		out = out[:k]
	}
	if len(out) > 0 {
		s.wr().Metadata(ga.Mailbox, out)
	}
	if longest > 0 {
		return okCode(wire.CodeMetadataLongEntries(uint64(longest)), "Getmetadata completed.")
	}
	return okCode("", "Getmetadata completed.")
}

func (s *session) cmdSetMetadata(ctx context.Context, cmd *wire.Command) error {
	sa, err := cmd.SetMetadata()
	if err != nil {
		return err
	}
	mbID, err := s.metaMailbox(ctx, sa.Mailbox)
	if err != nil {
		return err
	}
	hook := s.srv.opts.MetadataHook
	var mine []store.MetaEntry
	var hooked []MetadataEntry
	for _, e := range sa.Entries {
		name, ok := normalizeEntry(e.Name)
		if !ok || name == "/private" || name == "/shared" {
			return bad("Invalid entry name %q", clip(e.Name))
		}
		if !e.Nil && int64(len(e.Value)) > s.srv.lim.MaxMetadataValue {
			return no(wire.CodeMetadataMaxSize(uint64(s.srv.lim.MaxMetadataValue)), "Value of %s too long", clip(name))
		}
		var value []byte
		if !e.Nil {
			value = e.Value
			if value == nil {
				value = []byte{}
			}
		}
		if hook != nil && hook.Owns(sa.Mailbox, name) {
			hooked = append(hooked, MetadataEntry{Name: name, Value: value})
			continue
		}
		if s.owner(sa.Mailbox, name) == store.Server {
			return no(wire.CodeNoPerm, "Server entries are read-only: %s", clip(name))
		}
		mine = append(mine, store.MetaEntry{Name: name, Value: value})
	}
	if len(hooked) > 0 {
		if err := hook.SetMetadata(ctx, s.acc, sa.Mailbox, hooked); err != nil {
			return hookErr(err)
		}
	}
	if len(mine) > 0 {
		if err := s.srv.st.SetMetadata(ctx, s.acc.ID, mbID, mine, s.srv.lim.MaxMetadataEntries); err != nil {
			return s.storeErr(err)
		}
	}
	return okCode("", "Setmetadata completed.")
}

// hookErr turns a hook's *CommandError into a NO.
func hookErr(err error) error {
	var ce *CommandError
	if errors.As(err, &ce) {
		return no(wire.Code(ce.Code), "%s", ce.Text)
	}
	return err
}
