// Package e2e holds coibox's end-to-end tests: they build cmd/coibox, run it as a real
// process on loopback ports and talk to it with real clients (swaks, Python smtplib and imaplib).
package e2e
