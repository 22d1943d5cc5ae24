package testutil

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strings"
)

// HeaderFieldNames lists the names of msg's header fields, read the way go-msgauth
// reads a header (textproto lines, folded continuations): the oracle fuzz tests hold
// our own header splitting to. ok is false where that reader gives up.
func HeaderFieldNames(msg []byte) (names []string, ok bool) {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg)))
	var raw []string
	for {
		l, err := tr.ReadLine()
		if err != nil {
			return nil, false
		}
		if l == "" {
			break
		}
		if len(raw) > 0 && (l[0] == ' ' || l[0] == '\t') {
			raw[len(raw)-1] += "\r\n" + l
			continue
		}
		raw = append(raw, l)
	}
	names = make([]string, len(raw))
	for i, f := range raw {
		k, _, _ := strings.Cut(f, ":")
		names[i] = strings.TrimSpace(k)
	}
	return names, true
}
