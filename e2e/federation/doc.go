// Package federation tests coibox servers delivering mail to each other, and to and from
// Postfix, as built binaries on loopback addresses with an in-process DNS server.
package federation
