// Package proxy tests coibox behind nginx (Debian's package, started by the test): the
// documented setup for a host whose web server already owns ports 80 and 443.
package proxy
