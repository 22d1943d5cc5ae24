package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coibox/coibox/imapd"
	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/store"
)

// The words the SEARCH benchmarks look for. Nothing else in the generated mail
// contains them, so the number of matches is known: subjectWord is in every 100th
// subject, bodyWord in the text of every 50th message.
const (
	subjectWord = "offsite"
	bodyWord    = "zeppelin"
)

// hasSubjectWord and hasBodyWord say which of the generated messages (numbered from
// 1) the words are in.
func hasSubjectWord(i int) bool { return i%100 == 0 }
func hasBodyWord(i int) bool    { return i%50 == 25 }

// countUpTo counts the messages 1…n that have a property.
func countUpTo(n int, has func(int) bool) int {
	c := 0
	for i := 1; i <= n; i++ {
		if has(i) {
			c++
		}
	}
	return c
}

var (
	mailPeople = []string{"Alice Martin", "Bob Keller", "Carol Nguyen", "Dmitri Volkov", "Eva Lindqvist",
		"Farid Haddad", "Grace O'Neill", "Hiro Tanaka", "Ines Duarte", "Jonas Becker", "Kemi Adeyemi",
		"Lucía Romero", "Mark Jansen", "Nora Halvorsen", "Omar Sayed", "Priya Raman"}
	mailTopics = []string{"budget", "release plan", "server migration", "team lunch", "invoice 2291",
		"contract renewal", "design review", "holiday schedule", "onboarding checklist", "customer feedback",
		"conference travel", "backup policy", "quarterly report", "hiring pipeline", "office move",
		"security audit", "newsletter draft", "API deprecation", "board meeting", "support rota"}
	mailSubjects = []string{"%s", "Re: %s", "Re: Re: %s", "Fwd: %s", "Question about the %s",
		"Notes from the %s meeting", "[team] %s update", "Reminder: %s", "%s - please review", "Draft: %s"}
	mailWords = strings.Fields(`the a to of and in for on with that this we is it be will as at by from
		our you are have not can please next week meeting team project update plan review draft budget
		customer server release schedule numbers report thanks again question answer before after today
		tomorrow monday friday morning afternoon call notes agenda item items open issue issues fixed ticket
		deadline estimate cost invoice contract office travel hotel flight room booked lunch coffee slides
		deck version copy attached below above change changes proposal approve approved agree think maybe
		should would could also still already soon later last first second final figures total month year
		share shared folder link access document feedback comments details context support backup restore
		migration database storage network latency users accounts mail chat phone`)
)

// mailDate is the i-th message's date: an hour or so after the one before, in one of a
// few time zones, so that the mailbox spans a year or so.
func mailDate(i int) time.Time {
	base := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	zone := time.FixedZone("", []int{0, 3600, 7200, -5 * 3600, 9 * 3600}[i%5])
	return base.Add(time.Duration(i)*53*time.Minute + time.Duration(i*7919%3600)*time.Second).In(zone)
}

// mailMessage builds the i-th message of the benchmark mailbox, about size bytes, with
// the headers a client's mailbox has: Received, dates, people, a subject that may be a
// reply (with In-Reply-To and References) or RFC 2047-encoded, sometimes a List-Id. The
// text is made of ordinary words; every fifth message is multipart/alternative with an
// HTML part and every tenth is quoted-printable, so that BODY search meets both.
func mailMessage(i int, rcpt string, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 0xc01b0c))
	from := mailPeople[i%len(mailPeople)]
	fromAddr := strings.ToLower(strings.NewReplacer(" ", ".", "'", "", "í", "i").Replace(from)) + "@sender.example"
	topic := mailTopics[rng.IntN(len(mailTopics))]
	subject := fmt.Sprintf(mailSubjects[rng.IntN(len(mailSubjects))], topic)
	if hasSubjectWord(i) {
		subject = fmt.Sprintf("Planning the %s %s", subjectWord, topic)
	}
	date := mailDate(i)

	var b bytes.Buffer
	b.Grow(size + 512)
	fmt.Fprintf(&b, "Received: from mail.sender.example (mail.sender.example [192.0.2.%d])\r\n\tby mx.%s with ESMTPS id %08x\r\n\tfor <%s>; %s\r\n",
		1+i%250, benchDomain, rng.Uint32(), rcpt, date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%08x@sender.example>\r\nDate: %s\r\n", i, rng.Uint32(), date.Format(time.RFC1123Z))
	if strings.ContainsAny(from, "íó") {
		fmt.Fprintf(&b, "From: =?UTF-8?Q?%s?= <%s>\r\n", qEncode(from), fromAddr)
	} else {
		fmt.Fprintf(&b, "From: %q <%s>\r\n", from, fromAddr)
	}
	fmt.Fprintf(&b, "To: <%s>\r\n", rcpt)
	if i%7 == 0 {
		fmt.Fprintf(&b, "Cc: %q <%s>\r\n", mailPeople[(i+3)%len(mailPeople)], "team@sender.example")
	}
	if i%20 == 7 && !hasSubjectWord(i) {
		fmt.Fprintf(&b, "Subject: =?UTF-8?Q?%s?=\r\n", qEncode("Café chat: "+subject))
	} else {
		fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	}
	if strings.HasPrefix(subject, "Re:") {
		fmt.Fprintf(&b, "In-Reply-To: <%d.thread@sender.example>\r\nReferences: <%d.thread@sender.example>\r\n", i/10, i/10)
	}
	if i%4 == 0 {
		b.WriteString("List-Id: Team announcements <team.sender.example>\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")

	greeting := "Hi " + strings.Fields(mailPeople[(i+5)%len(mailPeople)])[0] + ","
	textSize := max(size-b.Len()-200, 200)
	switch {
	case i%5 == 1:
		const boundary = "=_coibench_alt"
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
		// Each paragraph goes out twice, as text and as HTML with its tags.
		paras := mailParagraphs(rng, textSize/2-100, hasBodyWord(i))
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\n", boundary, greeting)
		for _, p := range paras {
			b.WriteString(wrap(p, 72))
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "-- \r\n%s\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n<p>%s</p>\r\n", from, boundary, greeting)
		for _, p := range paras {
			b.WriteString(wrap("<p>"+p+"</p>", 72))
		}
		fmt.Fprintf(&b, "</body></html>\r\n--%s--\r\n", boundary)
	case i%10 == 3:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		fmt.Fprintf(&b, "%s\r\n\r\n", greeting)
		for _, p := range mailParagraphs(rng, textSize, hasBodyWord(i)) {
			b.WriteString(wrap(p, 72))
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "=E2=80=94 %s, sent from my phone\r\n", from)
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		fmt.Fprintf(&b, "%s\r\n\r\n", greeting)
		for _, p := range mailParagraphs(rng, textSize, hasBodyWord(i)) {
			b.WriteString(wrap(p, 72))
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "-- \r\n%s\r\n", from)
	}
	return b.Bytes()
}

// mailParagraphs makes paragraphs of sentences of ordinary words, about n bytes in
// all; with word, one sentence in the middle mentions bodyWord.
func mailParagraphs(rng *rand.Rand, n int, word bool) []string {
	var paras []string
	total := 0
	for total < n {
		var p strings.Builder
		for k := 3 + rng.IntN(3); k > 0 && total+p.Len() < n; k-- {
			for j := range 6 + rng.IntN(9) {
				w := mailWords[rng.IntN(len(mailWords))]
				if j == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				} else {
					p.WriteByte(' ')
				}
				p.WriteString(w)
			}
			p.WriteString(". ")
		}
		paras = append(paras, strings.TrimSpace(p.String()))
		total += p.Len() + 4 // and the blank line after it
	}
	if word {
		k := len(paras) / 2
		paras[k] = "The " + bodyWord + " tour is booked for the last week. " + paras[k]
	}
	return paras
}

// wrap breaks text into CRLF-terminated lines of at most width bytes, at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for w := range strings.FieldsSeq(text) {
		if line > 0 && line+1+len(w) > width {
			b.WriteString("\r\n")
			line = 0
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// qEncode encodes s for an RFC 2047 Q encoded word.
func qEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c < 0x80 && c != '=' && c != '?' && c != '_' && c > ' ':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// fillStore delivers messages first…first+n-1 into the account's INBOX by opening the
// server's database beside it, the way the server itself delivers (store.Deliver with
// imapd.Summarize): SQLite's WAL lets the two processes share it, and the server reads
// what IMAP clients see from the database. Many deliveries at once share group commits.
func fillStore(ctx context.Context, dataDir, user string, first, n, size int) error {
	st, err := store.Open(ctx, dataDir, store.Options{Summarize: imapd.Summarize, ReadConns: 1})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	acc, err := st.Account(ctx, user)
	if err != nil {
		return errors.Join(fmt.Errorf("fill %s: %w", user, err), st.Close())
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := first + int(next.Add(1)) - 1
				if i >= first+n {
					return
				}
				d := &store.Delivery{Body: mailMessage(i, user, size), InternalDate: mailDate(i), Targets: []store.Target{{AccountID: acc.ID}}}
				if _, _, err := st.Deliver(ctx, d); err != nil {
					errOnce.Do(func() { werr = fmt.Errorf("deliver message %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if werr == nil {
		werr = ctx.Err()
	}
	return errors.Join(werr, st.Close())
}

// fillSMTP delivers messages first…first+n-1 to user over SMTP (port 25), on several
// connections from their own loopback addresses when the server is local.
func fillSMTP(ctx context.Context, addr, user string, first, n, size int, timeout time.Duration) error {
	const conns, perConn = 8, 100
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	fail := func(err error) { errOnce.Do(func() { werr = err }) }
	spread := isLoopback(addr)
	for w := range conns {
		wg.Go(func() {
			opts := testutil.SMTPDialOptions{Timeout: timeout}
			if spread {
				opts.LocalIP = fmt.Sprintf("127.0.40.%d", w+1)
			}
			for ctx.Err() == nil {
				start := first + int(next.Add(perConn)) - perConn
				if start >= first+n {
					return
				}
				if err := sendMail(ctx, addr, opts, user, start, min(perConn, first+n-start), size); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if werr == nil {
		werr = ctx.Err()
	}
	return werr
}

// sendMail sends messages start…start+k-1 over one SMTP connection.
func sendMail(ctx context.Context, addr string, opts testutil.SMTPDialOptions, user string, start, k, size int) error {
	c, greet, err := testutil.DialSMTP(ctx, addr, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if greet.Code != 220 {
		return fmt.Errorf("smtp greeting: %s", greet)
	}
	if r, err := c.Hello("bench-client.sender.example"); err != nil || r.Code != 250 {
		return fmt.Errorf("smtp EHLO: %s %v", r, err)
	}
	for i := start; i < start+k; i++ {
		r, err := c.SendPipelined(benchSender, []string{user}, mailMessage(i, user, size))
		if err != nil {
			return fmt.Errorf("send message %d: %w", i, err)
		}
		if r.Code != 250 {
			return fmt.Errorf("send message %d: %s", i, r)
		}
	}
	return c.Quit()
}
