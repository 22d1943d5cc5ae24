// Package human formats figures for people to read: byte counts as the command line
// and the admin page show them.
package human

import "fmt"

// Bytes formats a byte count: 0 B, 512 B, 1.5 KiB, 30.0 MiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
