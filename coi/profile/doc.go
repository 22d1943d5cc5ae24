// Package profile is a domain's chatmail profile (spec/chatmail.md §1): its settings,
// the chatmail and ordinary defaults, `domain set` parsing and validation, and storage form.
package profile
