package smtpd

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// RFC 5321 §4.5.3.1: a local part has at most 64 octets, and a path (the address in
// angle brackets) at most 256, so an address at most 254.
const (
	maxLocalPart = 64
	maxAddress   = 256 - 2
)

// pathProblem says what is wrong with an address go-smtp parsed from MAIL FROM or
// RCPT TO ("" if nothing): go-smtp only splits the path, and passes NUL bytes, other
// control characters and invalid UTF-8 through, which no later stage (the store,
// Received fields, the queue talking to the next server) should have to meet.
func pathProblem(addr string) string {
	for i := 0; i < len(addr); i++ {
		switch b := addr[i]; {
		case b == 0:
			return "contains a NUL byte"
		case b < 0x20 || b == 0x7f:
			return "contains a control character"
		}
	}
	if !utf8.ValidString(addr) {
		return "is not valid UTF-8"
	}
	if len(addr) > maxAddress {
		return "is longer than 254 octets (RFC 5321 section 4.5.3.1)"
	}
	if i := strings.LastIndexByte(addr, '@'); i > maxLocalPart {
		return "has a local part longer than 64 octets (RFC 5321 section 4.5.3.1)"
	}
	return ""
}

// senderSyntax and recipientSyntax are the replies to a MAIL FROM or RCPT TO whose
// address pathProblem refuses (RFC 3463: X.1.7 bad sender, X.1.3 bad destination
// mailbox address syntax).
// errNeedSMTPUTF8 refuses a non-ASCII address in a transaction whose MAIL FROM did
// not carry the SMTPUTF8 parameter: RFC 6531 §3.5 answers it with 553 and X.6.7, as
// the message would otherwise travel on without the flag every later hop needs.
var errNeedSMTPUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
	Message: "Non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM (RFC 6531)"}

func senderSyntax(problem string) error {
	return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax: the address " + problem}
}

func recipientSyntax(problem string) error {
	return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax: the address " + problem}
}
