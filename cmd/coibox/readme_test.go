package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coibox/coibox/config"
)

// tableRows returns the Markdown table rows ("| ... |" lines) of text after the line
// heading and before the next "## " heading ("" heading: the whole text).
func tableRows(text, heading string) []string {
	inSection := heading == ""
	var rows []string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case heading != "" && line == heading:
			inSection = true
		case heading != "" && inSection && strings.HasPrefix(line, "## "):
			return rows
		case inSection && strings.HasPrefix(line, "|"):
			rows = append(rows, line)
		}
	}
	return rows
}

// TestREADMEConfigTable keeps the README's key table equal to config/README-keys.md,
// which the config package's own test keeps equal to the code's defaults.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile("../../config/README-keys.md")
	if err != nil {
		t.Fatal(err)
	}
	got := tableRows(string(readme), "## Configuration keys")
	want := tableRows(string(keys), "")
	if len(want) < 3 {
		t.Fatalf("config/README-keys.md has no table")
	}
	if !slices.Equal(got, want) {
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("README.md lacks the row\n%s", w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Errorf("README.md has a row config/README-keys.md lacks\n%s", g)
			}
		}
		t.Errorf("README.md's configuration table differs from config/README-keys.md; copy the table over")
	}
}

// TestREADMECommands checks that the commands the README shows exist, so a renamed
// command cannot leave the README behind.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{
		"go run ./cmd/coibox serve", "account add", "account passwd", "account del",
		"account list", "domain add --chatmail", "domain del --force", "alias add @example.org",
		"alias del", "backup ", "verify", "version", "dns example.org", "dns check", "queue list", "queue show", "queue retry", "queue drop",
	} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README.md does not mention %q", cmd)
		}
		if !strings.Contains(usageText, strings.Fields(strings.TrimPrefix(cmd, "go run ./cmd/coibox "))[0]) {
			t.Errorf("usage text does not mention %q", cmd)
		}
	}
}

// TestREADMEConfigParses loads every TOML example in the README.
func TestREADMEConfigParses(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(readme), "```toml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("README.md has no TOML example")
	}
	for i, b := range blocks {
		example, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("TOML example %d is not closed", i+1)
		}
		if _, err := config.Parse("README.md example", []byte(example)); err != nil {
			t.Errorf("TOML example %d: %v\n%s", i+1, err, example)
		}
	}
}
