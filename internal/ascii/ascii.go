// Package ascii answers whether text is 7-bit, the one question SMTP, MIME and
// mailbox-name rules keep asking (SMTPUTF8, 8BITMIME, modified UTF-7).
package ascii

// Is reports whether s has only 7-bit bytes (none at or above 0x80).
func Is[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
