// Package turn is the embedded TURN server for Delta Chat calls (spec/chatmail.md §2.5): time-limited
// credentials derived from a secret in the data directory, and relaying only between real clients.
package turn
