// Package release tests scripts/release: it builds the amd64, arm64 and armv7 tarballs,
// checks SHA256SUMS, and runs each binary (the ARM ones under qemu-user) as a mail server.
package release
