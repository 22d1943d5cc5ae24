// Package onboard is how people get chatmail accounts (spec/chatmail.md §3, §4): the name
// rules for accounts made at first login, random credentials, and the /new endpoint with its page.
package onboard
