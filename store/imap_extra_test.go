package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestIMAPExtra(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	acc := setup(t, s, "alice@example.org")[0]
	if got := s.QuotaLimit(acc); got != 0 {
		t.Errorf("QuotaLimit = %d, want 0 (unlimited default)", got)
	}
	mb, err := s.Mailbox(ctx, acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{"Subject: one\r\n\r\nbody one", "Subject: two\r\n\r\nbody two", "Subject: three\r\n\r\nbody three"}
	for _, b := range bodies {
		if _, _, err := s.Append(ctx, mb.ID, []byte(b), []string{`\Seen`}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		uids  []uint32
		limit int
		want  []string
	}{
		{"all", []uint32{1, 2, 3}, 0, bodies},
		{"some", []uint32{3, 1, 7}, 0, []string{bodies[0], bodies[2]}},
		{"headers", []uint32{2}, 12, []string{"Subject: two"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Bodies(ctx, mb.ID, tc.uids, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d bodies, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if string(got[i].Data) != tc.want[i] {
					t.Errorf("body %d (uid %d) = %q, want %q", i, got[i].UID, got[i].Data, tc.want[i])
				}
			}
		})
	}
	var scanned []string
	err = s.ScanBodies(ctx, mb.ID, []uint32{3, 1}, func(uid uint32, body []byte) error {
		scanned = append(scanned, fmt.Sprintf("%d:%s", uid, body))
		return nil
	})
	if want := []string{"1:" + bodies[0], "3:" + bodies[2]}; err != nil || !slices.Equal(scanned, want) {
		t.Errorf("ScanBodies = %q, %v; want %q", scanned, err, want)
	}
	var seen []uint32
	err = s.ScanMessages(ctx, mb.ID, nil, func(m *Message) error {
		if len(m.Flags) != 1 || m.Flags[0] != `\Seen` || m.Size == 0 {
			t.Errorf("row %+v", m)
		}
		seen = append(seen, m.UID)
		return nil
	})
	if err != nil || len(seen) != 3 || seen[0] != 1 || seen[2] != 3 {
		t.Errorf("ScanMessages all = %v, %v", seen, err)
	}
	seen = nil
	err = s.ScanMessages(ctx, mb.ID, []uint32{2}, func(m *Message) error { seen = append(seen, m.UID); return nil })
	if err != nil || len(seen) != 1 || seen[0] != 2 {
		t.Errorf("ScanMessages [2] = %v, %v", seen, err)
	}
}

func TestScanSnapshot(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	acc := setup(t, s, "alice@example.org")[0]
	mb, err := s.Mailbox(ctx, acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	flags := [][]string{nil, {`\Seen`}, {`\Seen`, `\Flagged`, "$label"}}
	for _, f := range flags {
		if _, _, err := s.Append(ctx, mb.ID, []byte("Subject: x\r\n\r\nbody"), f, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	want, metas, err := s.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []MsgMeta
	mb2, err := s.ScanSnapshot(ctx, mb.ID, func(uid uint32, modseq int64, f []byte) error {
		got = append(got, MsgMeta{UID: uid, ModSeq: modseq, Flags: splitFlags(string(f))})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mb2.HighestModSeq != want.HighestModSeq || mb2.UIDNext != want.UIDNext || mb2.ID != mb.ID {
		t.Errorf("mailbox = %+v, want %+v", mb2, want)
	}
	if len(got) != len(metas) {
		t.Fatalf("got %d rows, want %d", len(got), len(metas))
	}
	for i := range got {
		if got[i].UID != metas[i].UID || got[i].ModSeq != metas[i].ModSeq || !slices.Equal(got[i].Flags, metas[i].Flags) {
			t.Errorf("row %d = %+v, want %+v", i, got[i], metas[i])
		}
	}
	if _, err := s.ScanSnapshot(ctx, 999999, func(uint32, int64, []byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("ScanSnapshot of a missing mailbox = %v, want ErrNotFound", err)
	}
	stop := errors.New("stop")
	if _, err := s.ScanSnapshot(ctx, mb.ID, func(uint32, int64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScanSnapshot with fn error = %v", err)
	}
}
