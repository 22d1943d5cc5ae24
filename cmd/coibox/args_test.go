package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/store"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		minPos, maxPos int
		wantPos        []string
		wantConfig     string
		wantForce      bool
		wantErr        string
	}{
		{name: "flags first", args: []string{"--config", "c", "add", "x"}, maxPos: -1, wantPos: []string{"add", "x"}, wantConfig: "c"},
		{name: "flags last", args: []string{"add", "x", "--config=c", "--force"}, maxPos: -1, wantPos: []string{"add", "x"}, wantConfig: "c", wantForce: true},
		{name: "flags between", args: []string{"add", "-force", "x", "-config", "c"}, maxPos: -1, wantPos: []string{"add", "x"}, wantConfig: "c", wantForce: true},
		{name: "double dash", args: []string{"add", "--", "--config"}, maxPos: -1, wantPos: []string{"add", "--config"}},
		{name: "too few", args: []string{"--force"}, minPos: 1, maxPos: 1, wantErr: "missing argument"},
		{name: "too many", args: []string{"a", "b"}, maxPos: 1, wantErr: `unexpected argument "b"`},
		{name: "unknown flag", args: []string{"a", "--nope"}, maxPos: -1, wantErr: "flag provided but not defined: -nope"},
		{name: "none", args: nil, maxPos: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("test")
			config := fs.String("config", "", "")
			force := fs.Bool("force", false, "")
			pos, err := parseArgs(fs, tt.args, tt.minPos, tt.maxPos)
			if tt.wantErr != "" {
				var ue *usageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pos, tt.wantPos) || *config != tt.wantConfig || *force != tt.wantForce {
				t.Errorf("got pos %q config %q force %v, want %q %q %v", pos, *config, *force, tt.wantPos, tt.wantConfig, tt.wantForce)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		if _, err := parseArgs(newFlagSet("test"), []string{"-h"}, 0, 0); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("err = %v, want flag.ErrHelp", err)
		}
	})
}

func TestReadPassword(t *testing.T) {
	tests := []struct {
		name          string
		stdin         string
		want          string
		wantGenerated bool
		wantErr       string
	}{
		{name: "line with newline", stdin: "secret\n", want: "secret"},
		{name: "line without newline", stdin: "secret", want: "secret"},
		{name: "CRLF", stdin: "secret\r\n", want: "secret"},
		{name: "spaces kept", stdin: "  a b  \n", want: "  a b  "},
		{name: "empty", stdin: "", wantGenerated: true},
		{name: "empty line", stdin: "\n", wantGenerated: true},
		{name: "two lines", stdin: "a\nb\n", wantErr: "exactly one line"},
		{name: "lone CR inside", stdin: "a\rb\n", wantErr: "exactly one line"},
		{name: "too long", stdin: strings.Repeat("x", maxPasswordInput+1), wantErr: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "stdin")
			if err := os.WriteFile(p, []byte(tt.stdin), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, generated, err := readPassword(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if generated != tt.wantGenerated {
				t.Fatalf("generated = %v, want %v", generated, tt.wantGenerated)
			}
			if generated {
				if len(got) != 20 || strings.Trim(got, passwordAlphabet) != "" {
					t.Errorf("generated password %q is not 20 characters of the alphabet", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGeneratePasswordVaries(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := generatePassword(20)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{30 << 20, "30.0 MiB"}, {5 << 30, "5.0 GiB"},
	} {
		if got := human.Bytes(tt.n); got != tt.want {
			t.Errorf("human.Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestIsInside(t *testing.T) {
	for _, tt := range []struct {
		path, dir string
		want      bool
	}{
		{"/data", "/data", true},
		{"/data/bk", "/data", true},
		{"/data2", "/data", false},
		{"/backup", "/data", false},
		{"/", "/data", false},
	} {
		if got := isInside(tt.path, tt.dir); got != tt.want {
			t.Errorf("isInside(%q, %q) = %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
}

// TestPrintWelcome checks the first-start text of the local profile: every listener's
// address and the command that adds an account, and silence once accounts exist.
func TestPrintWelcome(t *testing.T) {
	cfg := config.Local()
	cfg.DataDir = t.TempDir()
	s, fresh, err := openStore(t.Context(), cfg, config.LocalSource, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !fresh {
		t.Fatal("a new data directory is not reported fresh")
	}
	var b strings.Builder
	printWelcome(t.Context(), &b, cfg, s, fresh)
	for _, want := range []string{"127.0.0.1:2525", "127.0.0.1:2587", "127.0.0.1:2465", "127.0.0.1:2143", "127.0.0.1:2993", "127.0.0.1:8080", "coibox account add you@localhost"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("welcome lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := s.AddAccount(t.Context(), "you@localhost", "pw"); err != nil {
		t.Fatalf("local profile does not serve localhost: %v", err)
	}
	b.Reset()
	printWelcome(t.Context(), &b, cfg, s, false)
	if b.Len() != 0 {
		t.Errorf("welcome printed although an account exists:\n%s", b.String())
	}
}
