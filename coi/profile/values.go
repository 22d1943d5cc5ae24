package profile

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/config"
)

// The value syntaxes of `coibox domain set`. Each parser's error quotes the value and
// shows a valid one; Parse puts the key in front. Sizes are written as in the config
// file; durations also take days ("20d"), which retention periods are counted in.

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", v)
}

func formatBool(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// parseCount reads a whole number in [lo, hi], or "unset" for zero.
func parseCount(v string, lo, hi int) (int, error) {
	if v == "unset" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number from %d to %d (or unset)", v, lo, hi)
	}
	return n, nil
}

// parseRange reads "MIN..MAX", one number for both, or "unset". Local parts are at most
// 64 octets (RFC 5321 4.5.3.1.1).
func parseRange(v string) (Range, error) {
	if v == "unset" {
		return Range{}, nil
	}
	lo, hi, ok := strings.Cut(v, "..")
	if !ok {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case errA != nil || errB != nil:
		return Range{}, fmt.Errorf("%q is not a length range: write MIN..MAX, e.g. 9..9, or unset", v)
	case a < 1 || b > 64:
		return Range{}, fmt.Errorf("%q is outside 1..64, the lengths a local part can have", v)
	case a > b:
		return Range{}, fmt.Errorf("%q has its minimum above its maximum", v)
	}
	return Range{a, b}, nil
}

func formatRange(r Range) string {
	if r == (Range{}) {
		return "unset"
	}
	return strconv.Itoa(r.Min) + ".." + strconv.Itoa(r.Max)
}

// rateUnits are the periods a rate may be given per.
func rateUnits() []struct {
	name string
	per  time.Duration
} {
	return []struct {
		name string
		per  time.Duration
	}{{"s", time.Second}, {"min", time.Minute}, {"h", time.Hour}, {"d", day}}
}

// parseRate reads "COUNT/UNIT[,burst=N]" (UNIT s, min, h or d; the burst defaults to 1)
// or "default".
func parseRate(v string) (Rate, error) {
	if v == "default" {
		return Rate{}, nil
	}
	bad := func(why string) (Rate, error) {
		return Rate{}, fmt.Errorf("%q is not a rate: %s; write e.g. 60/min,burst=10, or default", v, why)
	}
	spec, burst, hasBurst := strings.Cut(v, ",")
	count, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return bad("it needs a /")
	}
	r := Rate{Burst: 1}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 || n > 1_000_000 {
		return bad("the count must be a whole number from 1 to 1000000")
	}
	r.Count = n
	for _, u := range rateUnits() {
		if strings.TrimSpace(unit) == u.name {
			r.Per = u.per
		}
	}
	if r.Per == 0 {
		return bad("the unit must be s, min, h or d")
	}
	if hasBurst {
		k, b, _ := strings.Cut(burst, "=")
		n, err := strconv.Atoi(strings.TrimSpace(b))
		if strings.TrimSpace(k) != "burst" || err != nil || n < 1 || n > 1_000_000 {
			return bad("after the comma comes burst=N, N from 1 to 1000000")
		}
		r.Burst = n
	}
	return r, nil
}

func formatRate(r Rate) string {
	if r == (Rate{}) {
		return "default"
	}
	unit := r.Per.String()
	for _, u := range rateUnits() {
		if r.Per == u.per {
			unit = u.name
		}
	}
	return fmt.Sprintf("%d/%s,burst=%d", r.Count, unit, r.Burst)
}

// parseSize reads a size as the config file writes it, or "default" for zero. A bare
// "0" is refused: it reads as "no limit", and zero means the default here.
func parseSize(v string) (config.Size, error) {
	if v == "default" {
		return 0, nil
	}
	z, err := config.ParseSize(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w; or write default", err)
	case z == 0:
		return 0, fmt.Errorf("%q is not a limit: write default for the usual limit", v)
	}
	return z, nil
}

func formatSize(z config.Size) string {
	if z == 0 {
		return "default"
	}
	return z.String()
}

// maxDays keeps day counts far from overflowing time.Duration (about 292 years).
const maxDays = 36500

// parseDuration reads "20d", a Go duration such as "36h", or, if off is allowed,
// "off" or "0" for zero.
func parseDuration(v string, off bool) (time.Duration, error) {
	if off && (v == "off" || v == "0") {
		return 0, nil
	}
	example := `write e.g. 2d or 36h`
	if off {
		example += ", or off"
	}
	if v == "off" {
		return 0, fmt.Errorf("this cannot be off: %s", example)
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > maxDays {
			return 0, fmt.Errorf("%q is not a whole number of days from 1 to %d: %s", v, maxDays, example)
		}
		return time.Duration(days) * day, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case v == "":
		return 0, fmt.Errorf("the value is empty: %s", example)
	case err != nil && strings.Trim(v, "0123456789") == "":
		return 0, fmt.Errorf("%q has no unit: %s", v, example)
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration: %s", v, example)
	case d <= 0:
		return 0, fmt.Errorf("%q is not a positive duration: %s", v, example)
	case d > maxDays*day:
		return 0, fmt.Errorf("%q is longer than %d days", v, maxDays)
	}
	return d, nil
}

// formatDuration writes whole days as "20d" and anything else as Go does, without
// trailing zero units ("36h", not "36h0m0s").
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	if d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return config.Duration(d).String()
}

// parseAddress reads a bare address, with or without "mailto:", which the served
// value adds itself.
func parseAddress(v string) (string, error) {
	v = strings.TrimPrefix(v, "mailto:")
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return "", fmt.Errorf("%q is not a bare email address such as admin@example.org", v)
	}
	return v, nil
}

// parseHTTPS reads an absolute https URL, the only kind clients accept for a relay.
func parseHTTPS(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an https URL such as https://iroh.example.org/", v)
	}
	return v, nil
}

// parseTURN reads "off", "embedded", "embedded:PORT" or an external "HOST:PORT".
func parseTURN(v string) (TURN, error) {
	switch {
	case v == "off":
		return TURN{Mode: TURNOff}, nil
	case v == "embedded":
		return TURN{Mode: TURNEmbedded, Port: 3478}, nil
	}
	example := "write off, embedded, embedded:3478 or turn.example.org:3478"
	if p, ok := strings.CutPrefix(v, "embedded:"); ok {
		port, err := parsePort(p)
		if err != nil {
			return TURN{}, fmt.Errorf("%q: %w; %s", v, err, example)
		}
		return TURN{Mode: TURNEmbedded, Port: port}, nil
	}
	host, p, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return TURN{}, fmt.Errorf("%q is not a TURN server: %s", v, example)
	}
	if _, err := parsePort(p); err != nil {
		return TURN{}, fmt.Errorf("%q: %w; %s", v, err, example)
	}
	return TURN{Mode: TURNExternal, Addr: v}, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not from 1 to 65535", p)
	}
	return n, nil
}

func formatTURN(t TURN) string {
	switch t.Mode {
	case TURNEmbedded:
		return "embedded:" + strconv.Itoa(t.Port)
	case TURNExternal:
		return t.Addr
	}
	return "off"
}

// parseGuard reads "off" or comma-separated load1=N, ram=SIZE and disk=SIZE, each
// optional.
func parseGuard(v string) (ResourceGuard, error) {
	var g ResourceGuard
	if v == "off" {
		return g, nil
	}
	bad := func(why string) (ResourceGuard, error) {
		return ResourceGuard{}, fmt.Errorf("%q is not a resource guard: %s; write e.g. load1=5,ram=200MiB,disk=1GiB, or off", v, why)
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(item, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok {
			return bad(fmt.Sprintf("%q is not name=value", item))
		}
		if seen[k] {
			return bad(k + " is given twice")
		}
		seen[k] = true
		switch k {
		case "load1":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || !(f > 0) || f > 10000 { // !(f > 0) also catches NaN
				return bad("load1 must be a positive number")
			}
			g.MaxLoad1 = f
		case "ram", "disk":
			z, err := config.ParseSize(val)
			if err != nil || z == 0 {
				return bad(k + " must be a size above zero, such as 200MiB")
			}
			if k == "ram" {
				g.MinFreeRAM = z
			} else {
				g.MinFreeDisk = z
			}
		default:
			return bad(fmt.Sprintf("%q is not load1, ram or disk", k))
		}
	}
	return g, nil
}

func formatGuard(g ResourceGuard) string {
	var parts []string
	if g.MaxLoad1 != 0 {
		parts = append(parts, "load1="+strconv.FormatFloat(g.MaxLoad1, 'g', -1, 64))
	}
	if g.MinFreeRAM != 0 {
		parts = append(parts, "ram="+g.MinFreeRAM.String())
	}
	if g.MinFreeDisk != 0 {
		parts = append(parts, "disk="+g.MinFreeDisk.String())
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ",")
}
