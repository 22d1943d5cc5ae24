// Package e2ee decides whether a message counts as end-to-end encrypted and whether a
// chatmail domain's encryption rules accept it (spec/chatmail.md §6).
package e2ee
