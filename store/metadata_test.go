package store

import (
	"context"
	"testing"
)

// TestDeleteMetadataIf: the entry goes only while it holds the value compared with,
// and only the named account's entry goes.
func TestDeleteMetadataIf(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	accs := setup(t, s, "alice@example.org", "bob@example.org")
	alice, bob := accs[0].ID, accs[1].ID
	const name = "/private/vendor/webpush/subscriptions/abc"
	for _, id := range []int64{alice, bob} {
		if err := s.SetMetadata(ctx, id, 0, []MetaEntry{{Name: name, Value: []byte("old")}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A client replaced alice's value after the notifier read it.
	if err := s.SetMetadata(ctx, alice, 0, []MetaEntry{{Name: name, Value: []byte("new")}}, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step    string
		account int64
		name    string
		value   string
		deleted bool
		left    map[int64]string // value each account holds afterwards; "" = gone
	}{
		{"stale value spares the new one", alice, name, "old", false, map[int64]string{alice: "new", bob: "old"}},
		{"other account's value is its own", bob, name, "old", true, map[int64]string{alice: "new", bob: ""}},
		{"name compares case-insensitively", alice, "/private/vendor/webpush/SUBSCRIPTIONS/ABC", "new", true, map[int64]string{alice: "", bob: ""}},
		{"gone stays gone", alice, name, "new", false, map[int64]string{alice: "", bob: ""}},
	} {
		deleted, err := s.DeleteMetadataIf(ctx, tc.account, 0, tc.name, []byte(tc.value))
		if err != nil || deleted != tc.deleted {
			t.Fatalf("%s: DeleteMetadataIf = %v, %v; want %v", tc.step, deleted, err, tc.deleted)
		}
		for id, want := range tc.left {
			got, err := s.Metadata(ctx, id, 0, []string{name}, false)
			if err != nil {
				t.Fatal(err)
			}
			var have string
			if len(got) == 1 {
				have = string(got[0].Value)
			}
			if have != want {
				t.Errorf("%s: account %d holds %q, want %q", tc.step, id, have, want)
			}
		}
	}
}
