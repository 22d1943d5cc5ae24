package webadmin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/store"
)

// The pages that change the server: domains and accounts. The rules (what a new
// account of a chatmail domain gets, the DKIM keys and DNS records a new domain
// needs) stay where the commands keep them: cmd wires them in as Manage's functions.

// Manage is what the domain and account pages read and change.
type Manage struct {
	Store ManageStore
	// AddDomain serves a new domain (chatmail or not) with its DKIM keys and returns
	// the DNS records it needs, as `coibox domain add` does.
	AddDomain func(ctx context.Context, name string, chatmail bool) (records string, err error)
	// DNSRecords returns the DNS records a served domain needs (`coibox dns`).
	DNSRecords func(ctx context.Context, name string) (string, error)
	// AddAccount makes an account with password, as `coibox account add` does.
	AddAccount func(ctx context.Context, address, password string) error
	// NewPassword generates a password to show once.
	NewPassword func() (string, error)
	// Queue, if set, adds the queue page; QueueHeaders reads an entry's message.
	Queue        QueueAdmin
	QueueHeaders func(ctx context.Context, id int64) (*QueueHeaders, error)
}

// ManageStore is the part of the store the pages use directly.
type ManageStore interface {
	Domains(ctx context.Context) ([]store.Domain, error)
	DeleteDomain(ctx context.Context, name string, force bool) error
	AccountsPage(ctx context.Context, search string, offset, limit int) ([]store.Account, int, error)
	AccountCounts(ctx context.Context) (map[int64]int, error)
	SetPassword(ctx context.Context, address, password string) error
	DeleteAccount(ctx context.Context, address string) error
	Aliases(ctx context.Context) ([]store.Alias, error)
	AddAlias(ctx context.Context, address, destination string) error
	DeleteAlias(ctx context.Context, address, destination string) error
}

// accountsPerPage bounds the accounts table; search narrows it.
const accountsPerPage = 50

func (ui *adminUI) manageRoutes(mux *http.ServeMux) {
	page := func(h func(http.ResponseWriter, *http.Request, *session)) http.Handler { return secure(ui.session(h)) }
	post := func(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
		return secure(sameOrigin(ui.session(h)))
	}
	mux.Handle("GET /admin/domains", page(ui.domains))
	mux.Handle("POST /admin/domains/add", post(ui.domainAdd))
	mux.Handle("GET /admin/domains/dns", page(ui.domainDNS))
	mux.Handle("GET /admin/domains/delete", page(ui.confirm("domain", "/admin/domains/delete", "Delete the domain %s? Mail for it is refused from then on. A domain with accounts cannot be deleted here.")))
	mux.Handle("POST /admin/domains/delete", post(ui.domainDelete))
	mux.Handle("GET /admin/accounts", page(ui.accounts))
	mux.Handle("POST /admin/accounts/add", post(ui.accountAdd))
	mux.Handle("POST /admin/accounts/passwd", post(ui.accountPasswd))
	mux.Handle("GET /admin/accounts/delete", page(ui.confirm("account", "/admin/accounts/delete", "Delete the account %s with all its mail? This cannot be undone.")))
	mux.Handle("POST /admin/accounts/delete", post(ui.accountDelete))
	mux.Handle("GET /admin/aliases", page(ui.aliases))
	mux.Handle("POST /admin/aliases/add", post(ui.aliasAdd))
	mux.Handle("POST /admin/aliases/delete", post(ui.aliasDelete))
	if ui.Manage.Queue != nil {
		mux.Handle("GET /admin/queue", page(ui.queuePage))
		mux.Handle("POST /admin/queue/retry", post(ui.queueRetry))
		mux.Handle("GET /admin/queue/drop", page(ui.confirm("queue entry", "/admin/queue/drop",
			"Drop queue entry #%s without delivering it or telling its sender?")))
		mux.Handle("POST /admin/queue/drop", post(ui.queueDrop))
	}
}

type domainRow struct {
	Name     string
	Chatmail bool
	Accounts int
}

func (ui *adminUI) domains(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ds, err := ui.Manage.Store.Domains(ctx)
	if err != nil {
		ui.internal(w, err)
		return
	}
	count, err := ui.Manage.Store.AccountCounts(ctx)
	if err != nil {
		ui.internal(w, err)
		return
	}
	var rows []domainRow
	for _, d := range ds {
		rows = append(rows, domainRow{d.Name, d.Chatmail, count[d.ID]})
	}
	ui.render(w, http.StatusOK, "domains", page{Title: "Domains", CSRF: s.csrf, Domains: rows, Notice: r.URL.Query().Get("done")})
}

func (ui *adminUI) domainAdd(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	chatmail := r.PostFormValue("chatmail") == "on"
	records, err := ui.Manage.AddDomain(r.Context(), name, chatmail)
	if err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Domain not added", CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/domains", LinkText: "Back to the domains"})
		return
	}
	kind := "domain"
	if chatmail {
		kind = "chatmail domain"
	}
	ui.audit(r.Context(), r, "domain add", kind+" "+name)
	ui.render(w, http.StatusOK, "shown", page{Title: "Added " + kind + " " + name, CSRF: s.csrf,
		Message: "Publish these DNS records (coibox dns check " + name + " checks them):", Shown: records,
		Link: "/admin/domains", LinkText: "Back to the domains"})
}

func (ui *adminUI) domainDNS(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.URL.Query().Get("name")
	records, err := ui.Manage.DNSRecords(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		ui.render(w, http.StatusNotFound, "message", page{Title: "No such domain", CSRF: s.csrf, Message: name + " is not served here.", Error: "yes"})
		return
	}
	if err != nil {
		ui.internal(w, err)
		return
	}
	ui.render(w, http.StatusOK, "shown", page{Title: "DNS records of " + name, CSRF: s.csrf, Shown: records,
		Message: "The records " + name + " needs:", Link: "/admin/domains", LinkText: "Back to the domains"})
}

func (ui *adminUI) domainDelete(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("name")
	if err := ui.Manage.Store.DeleteDomain(r.Context(), name, false); err != nil {
		ui.render(w, http.StatusConflict, "message", page{Title: "Domain not deleted", CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/domains", LinkText: "Back to the domains"})
		return
	}
	ui.audit(r.Context(), r, "domain delete", name)
	http.Redirect(w, r, "/admin/domains?done="+url.QueryEscape("deleted "+name), http.StatusSeeOther)
}

// confirm is the page that asks before a deletion; only its form's POST deletes.
func (ui *adminUI) confirm(what, action, question string) func(http.ResponseWriter, *http.Request, *session) {
	field := "name"
	switch what {
	case "account":
		field = "address"
	case "queue entry":
		field = "id"
	}
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		v := r.URL.Query().Get(field)
		ui.render(w, http.StatusOK, "confirm", page{Title: "Delete " + what, CSRF: s.csrf,
			Message: strings.Replace(question, "%s", v, 1), Action: action, Field: field, Value: v})
	}
}

type accountRow struct {
	Address, Size, Quota, LastLogin string
	Messages                        int64
	UsedPercent                     int
}

func (ui *adminUI) accounts(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	pageNo, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pageNo = max(pageNo, 1)
	match, total, err := ui.Manage.Store.AccountsPage(r.Context(), q, (pageNo-1)*accountsPerPage, accountsPerPage)
	if err != nil {
		ui.internal(w, err)
		return
	}
	pages := max(1, (total+accountsPerPage-1)/accountsPerPage)
	if pageNo > pages { // past the end: show the last page
		pageNo = pages
		if match, total, err = ui.Manage.Store.AccountsPage(r.Context(), q, (pageNo-1)*accountsPerPage, accountsPerPage); err != nil {
			ui.internal(w, err)
			return
		}
	}
	var rows []accountRow
	for _, a := range match {
		row := accountRow{Address: a.Address, Messages: a.UsedMsgs, Size: human.Bytes(a.UsedBytes), Quota: "server default", LastLogin: "never"}
		switch {
		case a.Quota == 0:
			row.Quota = "unlimited"
		case a.Quota > 0:
			row.Quota = human.Bytes(a.Quota)
			row.UsedPercent = int(min(100, a.UsedBytes*100/a.Quota))
		}
		if !a.LastLogin.IsZero() {
			row.LastLogin = a.LastLogin.Format("2006-01-02")
		}
		rows = append(rows, row)
	}
	p := page{Title: "Accounts", CSRF: s.csrf, Accounts: rows, Query: q, Page: pageNo, Pages: pages, Total: total,
		Notice: r.URL.Query().Get("done")}
	if pageNo > 1 {
		p.Prev = "/admin/accounts?" + url.Values{"q": {q}, "page": {strconv.Itoa(pageNo - 1)}}.Encode()
	}
	if pageNo < pages {
		p.Next = "/admin/accounts?" + url.Values{"q": {q}, "page": {strconv.Itoa(pageNo + 1)}}.Encode()
	}
	ui.render(w, http.StatusOK, "accounts", p)
}

func (ui *adminUI) accountAdd(w http.ResponseWriter, r *http.Request, s *session) {
	addr := strings.TrimSpace(r.PostFormValue("address"))
	ui.withNewPassword(w, r, s, addr, "account add", "Account not added", "Added "+addr, "The password of "+addr+", shown only now:",
		func(ctx context.Context, pw string) error { return ui.Manage.AddAccount(ctx, addr, pw) })
}

func (ui *adminUI) accountPasswd(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	ui.withNewPassword(w, r, s, addr, "account passwd", "Password not changed", "New password for "+addr, "The new password of "+addr+", shown only now:",
		func(ctx context.Context, pw string) error { return ui.Manage.Store.SetPassword(ctx, addr, pw) })
}

// withNewPassword generates a password, applies it to addr, and shows it once (or
// says why it could not).
func (ui *adminUI) withNewPassword(w http.ResponseWriter, r *http.Request, s *session, addr, action, failTitle, title, message string,
	apply func(ctx context.Context, password string) error) {
	pw, err := ui.Manage.NewPassword()
	if err == nil {
		err = apply(r.Context(), pw)
	}
	if err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: failTitle, CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/accounts", LinkText: "Back to the accounts"})
		return
	}
	ui.audit(r.Context(), r, action, addr)
	ui.render(w, http.StatusOK, "shown", page{Title: title, CSRF: s.csrf, Shown: pw, Message: message,
		Link: "/admin/accounts", LinkText: "Back to the accounts"})
}

func (ui *adminUI) accountDelete(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	if err := ui.Manage.Store.DeleteAccount(r.Context(), addr); err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Account not deleted", CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/accounts", LinkText: "Back to the accounts"})
		return
	}
	ui.audit(r.Context(), r, "account delete", addr)
	http.Redirect(w, r, "/admin/accounts?done="+url.QueryEscape("deleted "+addr), http.StatusSeeOther)
}

// QueueAdmin is the outbound queue's admin side (package queue's Queue); Retry acts
// on the running queue at once.
type QueueAdmin interface {
	List(ctx context.Context) ([]store.QueueEntry, error)
	Retry(ctx context.Context, id int64) error
	Drop(ctx context.Context, id int64) error
}

// QueueHeaders are a queued message's From, Subject and size, for the queue page.
type QueueHeaders struct {
	From, Subject string
	Size          int
}

type queueRow struct {
	ID                  int64
	Sender, Created     string
	From, Subject, Size string
	Rcpts               []queueRcptRow
}

type queueRcptRow struct {
	Rcpt, State, NextAttempt, LastError string
	Attempts                            int
}

func (ui *adminUI) queuePage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	entries, err := ui.Manage.Queue.List(ctx)
	if err != nil {
		ui.internal(w, err)
		return
	}
	var rows []queueRow
	for _, e := range entries {
		row := queueRow{ID: e.ID, Sender: e.Sender, Created: e.Created.UTC().Format("2006-01-02 15:04")}
		if ui.Manage.QueueHeaders != nil {
			if h, err := ui.Manage.QueueHeaders(ctx, e.ID); err == nil {
				row.From, row.Subject, row.Size = h.From, h.Subject, human.Bytes(int64(h.Size))
			}
		}
		if row.Sender == "" {
			row.Sender = "<> (a bounce)"
		}
		for _, rc := range e.Rcpts {
			rr := queueRcptRow{Rcpt: rc.Rcpt, State: rc.State, Attempts: rc.Attempts, LastError: rc.LastError}
			if rc.State == "pending" && !rc.NextAttempt.IsZero() {
				rr.NextAttempt = rc.NextAttempt.UTC().Format("2006-01-02 15:04")
			}
			row.Rcpts = append(row.Rcpts, rr)
		}
		rows = append(rows, row)
	}
	ui.render(w, http.StatusOK, "queue", page{Title: "Queue", CSRF: s.csrf, Queue: rows, Notice: r.URL.Query().Get("done")})
}

func queueID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (ui *adminUI) queueRetry(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := queueID(r)
	var err error
	if ok {
		err = ui.Manage.Queue.Retry(r.Context(), id)
	}
	if !ok || err != nil {
		msg := "No such queue entry, or no recipient left to try."
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			msg = err.Error()
		}
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Not retried", CSRF: s.csrf, Message: msg, Error: "yes", Link: "/admin/queue", LinkText: "Back to the queue"})
		return
	}
	ui.audit(r.Context(), r, "queue retry", strconv.FormatInt(id, 10))
	http.Redirect(w, r, "/admin/queue?done="+url.QueryEscape("retrying #"+strconv.FormatInt(id, 10)+" now"), http.StatusSeeOther)
}

func (ui *adminUI) queueDrop(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := queueID(r)
	var err error
	if ok {
		err = ui.Manage.Queue.Drop(r.Context(), id)
	}
	if !ok || err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Not dropped", CSRF: s.csrf, Message: "No such queue entry.", Error: "yes", Link: "/admin/queue", LinkText: "Back to the queue"})
		return
	}
	ui.audit(r.Context(), r, "queue drop", strconv.FormatInt(id, 10))
	http.Redirect(w, r, "/admin/queue?done="+url.QueryEscape("dropped #"+strconv.FormatInt(id, 10)), http.StatusSeeOther)
}

func (ui *adminUI) aliases(w http.ResponseWriter, r *http.Request, s *session) {
	as, err := ui.Manage.Store.Aliases(r.Context())
	if err != nil {
		ui.internal(w, err)
		return
	}
	ui.render(w, http.StatusOK, "aliases", page{Title: "Aliases", CSRF: s.csrf, Aliases: as, Notice: r.URL.Query().Get("done")})
}

// aliasAdd adds an alias, or a domain's catch-all for an address "@domain"; the store
// checks both addresses as `coibox alias add` does.
func (ui *adminUI) aliasAdd(w http.ResponseWriter, r *http.Request, s *session) {
	addr := store.Normalize(strings.TrimSpace(r.PostFormValue("address")))
	dest := store.Normalize(strings.TrimSpace(r.PostFormValue("destination")))
	if err := ui.Manage.Store.AddAlias(r.Context(), addr, dest); err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Alias not added", CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/aliases", LinkText: "Back to the aliases"})
		return
	}
	ui.audit(r.Context(), r, "alias add", addr+" → "+dest)
	http.Redirect(w, r, "/admin/aliases?done="+url.QueryEscape("added "+addr+" → "+dest), http.StatusSeeOther)
}

func (ui *adminUI) aliasDelete(w http.ResponseWriter, r *http.Request, s *session) {
	addr, dest := r.PostFormValue("address"), r.PostFormValue("destination")
	if err := ui.Manage.Store.DeleteAlias(r.Context(), addr, dest); err != nil {
		ui.render(w, http.StatusBadRequest, "message", page{Title: "Alias not deleted", CSRF: s.csrf, Message: err.Error(), Error: "yes",
			Link: "/admin/aliases", LinkText: "Back to the aliases"})
		return
	}
	ui.audit(r.Context(), r, "alias delete", addr+" → "+dest)
	http.Redirect(w, r, "/admin/aliases?done="+url.QueryEscape("deleted "+addr+" → "+dest), http.StatusSeeOther)
}
