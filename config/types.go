package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes, written in the config file as "30MiB", "500KB", "1GiB" or
// "1024". Convert with int64(s).
type Size int64

// Size units: the decimal ones are powers of 1000, the binary ones powers of 1024.
const (
	B   Size = 1
	KB  Size = 1000
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	TB  Size = 1000 * GB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = map[string]Size{
	"": B, "b": B,
	"kb": KB, "mb": MB, "gb": GB, "tb": TB,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}

// ParseSize parses a size such as "30MiB", "500 KB" or "1024". Units are not case
// sensitive; a bare number is bytes.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	switch {
	case t == "":
		return 0, fmt.Errorf("size is empty (write e.g. \"30MiB\" or \"0\")")
	case strings.HasPrefix(t, "-"):
		return 0, fmt.Errorf("%q is not a size: sizes cannot be negative", s)
	case num == "":
		return 0, fmt.Errorf("%q is not a size: it must start with a whole number, as in \"30MiB\"", s)
	case strings.HasPrefix(unit, "."):
		return 0, fmt.Errorf("%q is not a size: use a whole number with a smaller unit, e.g. \"1536MiB\" for 1.5GiB", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q is not a size: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("%q is not a size: it is too large", s)
	}
	return Size(n) * mult, nil
}

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (z *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText implements encoding.TextMarshaler so a Config encodes back to TOML.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String writes z in the largest unit that divides it exactly, so that it reads like
// what people write in config files.
func (z Size) String() string {
	if z == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size Size
	}{{"TiB", TiB}, {"TB", TB}, {"GiB", GiB}, {"GB", GB}, {"MiB", MiB}, {"MB", MB}, {"KiB", KiB}, {"KB", KB}} {
		if z%u.size == 0 {
			return strconv.FormatInt(int64(z/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(z), 10)
}

// Duration is a time span written in the config file as "90s", "5m" or "2h30m".
// Convert with time.Duration(d).
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if strings.HasSuffix(s, "d") {
			return fmt.Errorf("%q is not a duration: there is no day unit, write hours instead, e.g. \"120h\" for 5 days", s)
		}
		return fmt.Errorf("%q is not a duration: write it like \"90s\", \"5m\" or \"2h30m\"", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is not a duration: durations cannot be negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler so a Config encodes back to TOML.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats d as time.Duration does, less zero trailing units ("5m", not "5m0s"),
// to match how durations are written in config files and messages.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isText reports whether values of t are decoded from TOML strings by UnmarshalText.
func isText(t reflect.Type) bool { return reflect.PointerTo(t).Implements(textUnmarshaler) }

// checkTypes compares the TOML value types in raw with the Go field types of t and
// words a message per mismatch. Keys with no field are left to the unknown-key check.
func checkTypes(raw map[string]any, t reflect.Type, prefix string) []error {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		fields[f.Tag.Get("toml")] = f.Type
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)

	var errs []error
	for _, name := range names {
		ft, ok := fields[name]
		if !ok {
			continue
		}
		key, v := prefix+name, raw[name]
		bad := func(want string) {
			msg := fmt.Sprintf("%s: expected %s, got %s", key, want, describe(v))
			if n, ok := v.(int64); ok && strings.HasPrefix(key, "listen.") {
				msg += fmt.Sprintf(" (try \":%d\")", n)
			}
			errs = append(errs, fmt.Errorf("%s", msg))
		}
		switch {
		case ft == reflect.TypeFor[Size]():
			if _, ok := v.(string); !ok {
				if _, ok := v.(int64); !ok {
					bad("a size such as \"30MiB\"")
				}
			}
		case ft == reflect.TypeFor[Duration]():
			if n, ok := v.(int64); ok {
				errs = append(errs, fmt.Errorf("%s: %d has no unit; write a duration string such as \"%ds\" or \"%dm\"", key, n, n, n))
			} else if _, ok := v.(string); !ok {
				bad("a duration such as \"5m\"")
			}
		case ft.Kind() == reflect.Struct:
			sub, ok := v.(map[string]any)
			if !ok {
				bad(fmt.Sprintf("a table ([%s])", key))
				continue
			}
			errs = append(errs, checkTypes(sub, ft, key+".")...)
		case ft.Kind() == reflect.String:
			if _, ok := v.(string); !ok {
				bad("a quoted string")
			}
		case ft.Kind() == reflect.Int:
			if _, ok := v.(int64); !ok {
				bad("a whole number")
			}
		case ft.Kind() == reflect.Bool:
			if _, ok := v.(bool); !ok {
				bad("true or false")
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			list, ok := v.([]any)
			if !ok {
				bad("a list of strings such as [\"a.example\"]")
				continue
			}
			for _, e := range list {
				if _, ok := e.(string); !ok {
					bad("a list of strings such as [\"a.example\"]")
					break
				}
			}
		default:
			// A field type this switch does not know is a mistake in this package.
			errs = append(errs, fmt.Errorf("%s: cannot check values of Go type %s", key, ft))
		}
	}
	return errs
}

// describe names a decoded TOML value for messages, e.g. `the number 25`.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the number %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "a list"
	default:
		return "a date or time"
	}
}
