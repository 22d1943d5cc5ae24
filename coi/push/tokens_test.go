package push

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/store"
)

var t0 = time.Unix(1_700_000_000, 0)

// newStore opens a store in a fresh directory with alice@example.org in it.
func newStore(t *testing.T) (*store.Store, *store.Account) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "example.org", true); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, "alice@example.org", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	return st, a
}

func jobs(t *testing.T, st *store.Store) []store.PushJob {
	t.Helper()
	js, err := st.DuePushJobs(context.Background(), t0.Add(1000*24*time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func mustSet(t *testing.T, tk *Tokens, accountID int64, token string, at time.Time) {
	t.Helper()
	if err := tk.Set(context.Background(), accountID, []byte(token), at); err != nil {
		t.Fatalf("set %.20s: %v", token, err)
	}
}

func mustGet(t *testing.T, tk *Tokens, accountID int64, at time.Time) string {
	t.Helper()
	v, err := tk.Get(context.Background(), accountID, at)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSetSize(t *testing.T) {
	st, a := newStore(t)
	tk := &Tokens{Store: st}
	ctx := context.Background()
	maxTok := "openpgp:" + strings.Repeat("A", MaxTokenSize-len("openpgp:"))
	if err := tk.Set(ctx, a.ID, []byte(maxTok), t0); err != nil {
		t.Fatalf("a %d-byte token: %v", MaxTokenSize, err)
	}
	err := tk.Set(ctx, a.ID, []byte(maxTok+"A"), t0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a %d-byte token: %v, want ErrTooLarge", MaxTokenSize+1, err)
	}
	for _, bad := range []string{"", "two words", "tab\there", "line\r\n", "caf\xc3\xa9"} {
		if err := tk.Set(ctx, a.ID, []byte(bad), t0); !errors.Is(err, ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", bad, err)
		}
	}
	if got := mustGet(t, tk, a.ID, t0); got != maxTok {
		t.Errorf("Get after refused sets: %.40q…", got)
	}
}

// TestSetAddsAndEvicts: a Set adds beside the others or refreshes; the 21st token
// evicts the one set longest ago; Get joins with one space, oldest first.
func TestSetAddsAndEvicts(t *testing.T) {
	st, a := newStore(t)
	tk := &Tokens{Store: st}
	mustSet(t, tk, a.ID, "openpgp:one", t0)
	mustSet(t, tk, a.ID, "openpgp:two", t0.Add(time.Second))
	if got := mustGet(t, tk, a.ID, t0.Add(time.Minute)); got != "openpgp:one openpgp:two" {
		t.Errorf("Get: %q", got)
	}
	// Refreshing one moves it to the end and keeps one copy.
	mustSet(t, tk, a.ID, "openpgp:one", t0.Add(2*time.Second))
	if got := mustGet(t, tk, a.ID, t0.Add(time.Minute)); got != "openpgp:two openpgp:one" {
		t.Errorf("Get after refresh: %q", got)
	}

	for i := range MaxTokens - 1 {
		mustSet(t, tk, a.ID, fmt.Sprintf("openpgp:n%02d", i), t0.Add(time.Duration(10+i)*time.Second))
	}
	got := strings.Split(mustGet(t, tk, a.ID, t0.Add(time.Minute)), " ")
	if len(got) != MaxTokens || got[0] != "openpgp:one" || got[len(got)-1] != fmt.Sprintf("openpgp:n%02d", MaxTokens-2) {
		t.Fatalf("%d tokens: %v", len(got), got)
	}
	for _, tok := range got {
		if tok == "openpgp:two" {
			t.Errorf("the token set longest ago was evicted instead of two: %v", got)
		}
	}
}

// TestValidity: 90 days after its last Set a token is gone; one whose time lies more
// than 60 s ahead (the clock went back) is gone too; both are deleted from the store.
func TestValidity(t *testing.T) {
	st, a := newStore(t)
	tk := &Tokens{Store: st}
	ctx := context.Background()
	mustSet(t, tk, a.ID, "openpgp:old", t0)
	mustSet(t, tk, a.ID, "openpgp:skew60", t0.Add(90*24*time.Hour-time.Second+MaxClockSkew))
	mustSet(t, tk, a.ID, "openpgp:skew61", t0.Add(90*24*time.Hour-time.Second+MaxClockSkew+time.Second))

	justBefore := t0.Add(TokenLifetime - time.Second)
	if got := mustGet(t, tk, a.ID, justBefore); got != "openpgp:old openpgp:skew60" {
		t.Errorf("Get at 90 d - 1 s: %q", got)
	}
	if got := mustGet(t, tk, a.ID, t0.Add(TokenLifetime)); got != "openpgp:skew60" {
		t.Errorf("Get at 90 d: %q", got)
	}
	left, err := st.PushTokens(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Token != "openpgp:skew60" {
		t.Errorf("invalid tokens not deleted: %+v", left)
	}
}

// TestTrigger: mail from the account itself makes no job, whatever the case of the
// address; other mail makes one job per valid token, folded while pending.
func TestTrigger(t *testing.T) {
	st, a := newStore(t)
	kicks := 0
	tk := &Tokens{Store: st, Now: func() time.Time { return t0.Add(TokenLifetime - time.Hour) }, Kick: func() { kicks++ }}
	ctx := context.Background()
	mustSet(t, tk, a.ID, "openpgp:expired", t0.Add(-time.Hour))
	mustSet(t, tk, a.ID, "openpgp:phone", t0)
	mustSet(t, tk, a.ID, "openpgp:laptop", t0.Add(time.Second))

	for _, from := range []string{"alice@example.org", "Alice@Example.ORG", " alice@example.org "} {
		if err := tk.Trigger(ctx, a.ID, "alice@example.org", from); err != nil {
			t.Fatal(err)
		}
	}
	if js := jobs(t, st); len(js) != 0 || kicks != 0 {
		t.Fatalf("self-sent mail made jobs: %+v (%d kicks)", js, kicks)
	}

	if err := tk.Trigger(ctx, a.ID, "alice@example.org", "bob@example.net"); err != nil {
		t.Fatal(err)
	}
	js := jobs(t, st)
	if len(js) != 2 || kicks != 1 {
		t.Fatalf("jobs after one delivery: %+v (%d kicks)", js, kicks)
	}
	for _, j := range js {
		if j.Token == "openpgp:expired" || j.Attempts != 0 || !j.NextAttempt.Equal(tk.Now()) {
			t.Errorf("job %+v", j)
		}
	}
	if toks, _ := st.PushTokens(ctx, a.ID); len(toks) != 2 {
		t.Errorf("expired token kept: %+v", toks)
	}

	// An empty From (none, or unparsable) is not the account's.
	if err := tk.Trigger(ctx, a.ID, "alice@example.org", ""); err != nil {
		t.Fatal(err)
	}
	js2 := jobs(t, st)
	if len(js2) != 2 || kicks != 1 {
		t.Fatalf("second delivery made a second job per token: %+v (%d kicks)", js2, kicks)
	}
	for _, j := range js2 {
		if j.Triggers != 2 {
			t.Errorf("delivery not folded into %+v", j)
		}
	}
}

func TestTokenID(t *testing.T) {
	tok := "openpgp:" + strings.Repeat("Zm9v", 100)
	id := TokenID(tok)
	if len(id) != 12 || strings.Contains(tok, id) || TokenID(tok) != id || TokenID(tok+"x") == id {
		t.Errorf("TokenID %q", id)
	}
}
