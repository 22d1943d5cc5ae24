package smtpd

import (
	"bytes"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// authFunc checks a login: nil, or the *smtp.SMTPError to answer.
type authFunc func(identity, username, password string) error

var errSASLSyntax = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}

// plainServer is SASL PLAIN (RFC 4616): one message "authzid NUL authcid NUL passwd".
// go-sasl has one, but answers a malformed message with an error go-smtp turns into
// a 454 (try again) instead of a 501.
type plainServer struct {
	auth authFunc
	done bool
}

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	if response == nil {
		return []byte{}, false, nil // no initial response: ask for it
	}
	p.done = true
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, false, errSASLSyntax
	}
	return nil, true, p.auth(string(parts[0]), string(parts[1]), string(parts[2]))
}

// loginServer is the obsolete but widespread LOGIN mechanism (Outlook, old phones):
// the server prompts "Username:", then "Password:". go-sasl only has its client side.
type loginServer struct {
	auth     authFunc
	username []byte
	state    int // 0: want username, 1: want password, 2: done
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.state {
	case 0:
		if response == nil {
			// No initial response: prompt for the username. An empty initial response
			// ("AUTH LOGIN =") is an empty username, refused below.
			l.state = -1
			return []byte("Username:"), false, nil
		}
		fallthrough
	case -1:
		if len(response) == 0 {
			return nil, false, errSASLSyntax
		}
		l.username = response
		l.state = 1
		return []byte("Password:"), false, nil
	case 1:
		l.state = 2
		return nil, true, l.auth("", string(l.username), string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
