package imapd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestStalledConnectionsDoNotBlockOthers leaves connections in the states that hold
// a session longest: one has announced an APPEND literal and sends nothing more, one
// asked for a large FETCH and never reads the answer (so the server blocks writing to
// it), one sits in IDLE. Meanwhile other connections must log in, select, fetch and
// see a new delivery as promptly as ever.
func TestStalledConnectionsDoNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("x", 200<<10)
	for i := 0; i < 20; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, "big")+big+"\n")
	}
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return c, r
	}
	cmd := func(c net.Conn, r *bufio.Reader, tag, line string) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "%s %s\r\n", tag, line)
		var out strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s %s: %v (so far %q)", tag, line, err, out.String())
			}
			out.WriteString(l)
			if strings.HasPrefix(l, tag+" ") {
				return out.String()
			}
		}
	}
	login := fmt.Sprintf("LOGIN alice@example.org %s", testPassword)

	// 1: half an APPEND.
	c1, r1 := dial()
	cmd(c1, r1, "a", login)
	fmt.Fprintf(c1, "b APPEND INBOX {100000}\r\n")
	if l, _ := r1.ReadString('\n'); !strings.HasPrefix(l, "+") {
		t.Fatalf("no continuation: %q", l)
	}
	// 2: a 4 MB FETCH nobody reads.
	c2, r2 := dial()
	cmd(c2, r2, "a", login)
	cmd(c2, r2, "b", "SELECT INBOX")
	fmt.Fprintf(c2, "c FETCH 1:* BODY.PEEK[]\r\n")
	// 3: IDLE.
	c3, r3 := dial()
	cmd(c3, r3, "a", login)
	cmd(c3, r3, "b", "SELECT INBOX")
	fmt.Fprintf(c3, "c IDLE\r\n")
	if l, _ := r3.ReadString('\n'); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE not accepted: %q", l)
	}
	time.Sleep(100 * time.Millisecond) // let connection 2 fill its socket buffers

	for i := 0; i < 3; i++ {
		c, r := dial()
		if out := cmd(c, r, "a", login); !strings.Contains(out, "a OK") {
			t.Fatalf("login %d: %q", i, out)
		}
		if out := cmd(c, r, "b", "SELECT INBOX"); !strings.Contains(out, "* 20 EXISTS") {
			t.Fatalf("select %d: %q", i, out)
		}
		if out := cmd(c, r, "c", "UID FETCH 1:* (FLAGS)"); strings.Count(out, "FETCH (") != 20 {
			t.Fatalf("fetch %d: %q", i, out)
		}
	}
	// The idling connection still hears of new mail at once.
	e.deliver(e.acc, "INBOX", testMessage(99, "new"))
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := r3.ReadString('\n'); err != nil || l != "* 21 EXISTS\r\n" {
		t.Fatalf("idle: %q %v", l, err)
	}
}
