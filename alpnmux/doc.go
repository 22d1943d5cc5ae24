// Package alpnmux shares one TCP port among servers by the ALPN protocol a TLS client
// asks for, without terminating TLS: port 443 carries HTTPS, IMAP and submission.
//
// It reads the ClientHello, notes the protocols offered, and hands the connection,
// those bytes replayed first, to the listener of the first route that matches; the
// server behind that listener does the handshake itself, with its own certificates,
// limits and timeouts, exactly as on a port of its own (as nginx's ssl_preread does
// for chatmail relays, chatmail spec §2.4).
package alpnmux
