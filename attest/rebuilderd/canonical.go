package rebuilderd

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lanternfarm/lantern/internal/strictjson"
)

// errCanonical reports JSON that has no canonical form that in-toto's two
// implementations agree on.
var errCanonical = errors.New("no canonical form")

// appendCanonical appends the canonical JSON of raw, one JSON value already
// checked by strictjson (Raw: strict syntax, UTF-8, no duplicate names,
// bounded depth), to buf. The form is securesystemslib's, which in-toto v0.9
// signs: object members sorted by name (byte order, which is also code point
// order), no white space, strings with only '"' and '\' escaped and every
// other character as itself in UTF-8, integers only.
//
// Each level decodes its own value again from raw, so a document costs its
// size times its depth, and strictjson bounds the depth.
func appendCanonical(buf, raw []byte) ([]byte, error) {
	d := strictjson.NewDecoder(raw)
	switch c := raw[0]; {
	case c == '{':
		type member struct {
			name  string
			value []byte
		}
		var members []member
		err := d.Object(func(d *strictjson.Decoder, name []byte) error {
			v, err := d.Raw()
			members = append(members, member{string(name), v})
			return err
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.name, b.name) })
		buf = append(buf, '{')
		for i, m := range members {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendString(buf, m.name); err != nil {
				return nil, err
			}
			buf = append(buf, ':')
			if buf, err = appendCanonical(buf, m.value); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case c == '[':
		buf = append(buf, '[')
		n := 0
		err := d.Array(func(d *strictjson.Decoder) error {
			v, err := d.Raw()
			if err != nil {
				return err
			}
			if n > 0 {
				buf = append(buf, ',')
			}
			n++
			buf, err = appendCanonical(buf, v)
			return err
		})
		if err != nil {
			return nil, err
		}
		return append(buf, ']'), nil
	case c == '"':
		s, err := d.String()
		if err != nil {
			return nil, err
		}
		return appendString(buf, s)
	case c == '-' || '0' <= c && c <= '9':
		return appendInteger(buf, string(raw))
	default: // true, false, null: strictjson checked the literal
		return append(buf, raw...), nil
	}
}

// appendString appends s quoted, escaping only '"' and '\'. It refuses
// control characters: securesystemslib writes them as they are and
// in-toto-rs (rebuilderd's) escapes them as serde_json does, so a string that
// holds one would be signed as different bytes by the two; no field of a
// rebuilderd link has one.
func appendString(buf []byte, s string) ([]byte, error) {
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			return nil, fmt.Errorf("%w: control character %q in string %q", errCanonical, c, truncate(s))
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"'), nil
}

// appendInteger appends a JSON number that must be an integer that fits in
// an int64 or a uint64, as in-toto-rs reads numbers; strictjson has checked
// its syntax, which rules out leading zeros. -0 is refused: it is no
// integer's only spelling.
func appendInteger(buf []byte, n string) ([]byte, error) {
	if strings.ContainsAny(n, ".eE") {
		return nil, fmt.Errorf("%w: number %s is not an integer", errCanonical, truncate(n))
	}
	if n == "-0" {
		return nil, fmt.Errorf("%w: number -0", errCanonical)
	}
	if _, err := strconv.ParseInt(n, 10, 64); err != nil {
		if _, err := strconv.ParseUint(n, 10, 64); err != nil {
			return nil, fmt.Errorf("%w: integer %s is out of range", errCanonical, truncate(n))
		}
	}
	return append(buf, n...), nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
