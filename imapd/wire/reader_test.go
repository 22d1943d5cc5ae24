package wire

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// readAll reads every command in input and renders the outcome of each as
// one transcript line: "tag NAME rest-of-args" for a command, the response
// for an *Error (plus " (fatal)"), or "io: …" for a read error, which ends
// the transcript. Continuation requests appear as "+ <size>".
func readAll(t *testing.T, input string, lim Limits) []string {
	t.Helper()
	var out []string
	r := NewReader(strings.NewReader(input), lim)
	r.Continue = func(_ context.Context, lit LiteralInfo) error {
		out = append(out, "+ "+itoa(lit.Size))
		return nil
	}
	for i := 0; i < 100; i++ {
		cmd, err := r.ReadCommand(context.Background())
		if e, ok := AsError(err); ok {
			s := e.Error()
			if e.Fatal {
				s += " (fatal)"
			}
			out = append(out, s)
			if e.Fatal {
				return out
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			out = append(out, "io: "+err.Error())
			return out
		}
		s := cmd.Tag + " "
		if cmd.UID {
			s += "UID "
		}
		s += cmd.Name + "|" + string(cmd.Args.buf[cmd.Args.pos:])
		out = append(out, s)
	}
	t.Fatal("too many commands")
	return nil
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestReadCommand(t *testing.T) {
	small := Limits{MaxLine: 40, MaxLiteral: 10, MaxAppend: 20, MaxArgs: 3}
	tests := []struct {
		name  string
		lim   Limits
		input string
		want  []string
	}{
		{"crlf", Limits{}, "a1 NOOP\r\n", []string{"a1 NOOP|"}},
		{"bare lf", Limits{}, "a1 noop\nA2 Capability\n", []string{"a1 NOOP|", "A2 CAPABILITY|"}},
		{"uid prefix", Limits{}, "a uid fetch 1:* (FLAGS)\r\n", []string{"a UID FETCH| 1:* (FLAGS)"}},
		{"blank lines skipped", Limits{}, "\r\n  \na NOOP\r\n", []string{"a NOOP|"}},
		{"sync literal asks to continue", Limits{}, "a LOGIN {4}\r\nuser {4+}\r\npass\r\n",
			[]string{"+ 4", "a LOGIN| {4} {4+}"}},
		{"binary literal", Limits{}, "a APPEND x ~{3}\r\na\x00b\r\n", []string{"+ 3", "a APPEND| x ~{3}"}},
		{"brace inside line is not a literal", Limits{}, "a LOGIN u {4}x\r\n", []string{"a LOGIN| u {4}x"}},
		{"bad tag", Limits{}, "+x NOOP\r\nb NOOP\r\n", []string{"* BAD invalid tag", "b NOOP|"}},
		{"tag only", Limits{}, "a\r\n", []string{"a BAD missing command name"}},
		{"uid alone", Limits{}, "a UID\r\n", []string{"a BAD missing command name after UID"}},
		{"line too long, then next command", small, "a NOOP " + strings.Repeat("x", 50) + "\r\nb NOOP\r\n",
			[]string{"a BAD line too long (limit 40 bytes)", "b NOOP|"}},
		{"line too long ending in sync literal", small, "a X " + strings.Repeat("x", 50) + " {5}\r\nb NOOP\r\n",
			[]string{"a BAD line too long (limit 40 bytes)", "b NOOP|"}},
		{"line too long ending in non-sync literal", small, "a X " + strings.Repeat("x", 50) + " {5+}\r\nhello\r\n",
			[]string{"* BYE line too long (limit 40 bytes) (fatal)"}},
		{"sync literal too large is refused unread", small, "a SETMETADATA INBOX (/x {11}\r\nb NOOP\r\n",
			[]string{"a BAD literal too large (limit 10 bytes)", "b NOOP|"}},
		{"literals add up", small, "a X {6}\r\n123456 {6}\r\n",
			[]string{"+ 6", "a BAD literal too large (limit 10 bytes)"}},
		{"non-sync literal too large closes", small, "a SETMETADATA INBOX (/x {11+}\r\n01234567890)\r\n",
			[]string{"* BYE literal too large (limit 10 bytes) (fatal)"}},
		{"append over its limit", small, "a APPEND INBOX {21}\r\nb NOOP\r\n",
			[]string{"a NO [TOOBIG] message too large (limit 20 bytes)", "b NOOP|"}},
		{"append within its limit", small, "a APPEND INBOX {15+}\r\n123456789012345\r\n",
			[]string{"a APPEND| INBOX {15+}"}},
		{"literal size overflow", small, "a X {99999999999999999999}\r\n",
			[]string{"a BAD literal too large (limit 10 bytes)"}},
		{"too many literals", small, "a X {1}\r\n1 {1}\r\n2 {1}\r\n3 {1}\r\n",
			[]string{"+ 1", "+ 1", "+ 1", "a BAD too many literals (limit 3)"}},
		{"many short lines add up", small, "a X {1}\r\n" + strings.Repeat("y", 30) + " {1}\r\n" + strings.Repeat("z", 10) + "\r\nb NOOP\r\n",
			[]string{"+ 1", "+ 1", "a BAD line too long (limit 40 bytes)", "b NOOP|"}},
		{"eof inside literal", Limits{}, "a X {10}\r\nabc", []string{"+ 10", "io: read literal: unexpected EOF"}},
		{"eof inside line", Limits{}, "a NOOP", []string{"io: read command: unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, tt.input, tt.lim)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("transcript:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	r := NewReader(strings.NewReader("DONE\r\ndone\n"+strings.Repeat("x", 100)+"\nnext\n"), Limits{MaxLine: 50})
	ctx := context.Background()
	for _, want := range []string{"DONE", "done", "* BAD line too long (limit 50 bytes)", "next"} {
		got, err := r.ReadLine(ctx)
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("ReadLine = %q, want %q", got, want)
		}
	}
}

func TestContinueRefuses(t *testing.T) {
	r := NewReader(strings.NewReader("a APPEND INBOX {500}\r\nb NOOP\r\n"), Limits{})
	r.Continue = func(_ context.Context, lit LiteralInfo) error {
		if lit.Name == "APPEND" && lit.Size > 100 {
			return &Error{Tag: lit.Tag, Status: NO, Code: CodeOverQuota, Text: "quota exceeded"}
		}
		return nil
	}
	ctx := context.Background()
	_, err := r.ReadCommand(ctx)
	if err == nil || err.Error() != "a NO [OVERQUOTA] quota exceeded" {
		t.Fatalf("err = %v", err)
	}
	cmd, err := r.ReadCommand(ctx)
	if err != nil || cmd.Tag != "b" {
		t.Fatalf("next command: %v, %v", cmd, err)
	}
}
