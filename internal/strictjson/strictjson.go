// Package strictjson reads JSON from untrusted sources strictly and fast,
// without reflection. Callers walk the document they expect, field by field:
// a field they do not know, a field given twice, a field name in another case,
// a value of the wrong kind, invalid UTF-8 or anything after the value is an
// error with its byte offset. encoding/json accepts the last three quietly
// (its field matching is case-insensitive and the last duplicate wins), which
// lets two parsers of one signed statement read different things; and it
// costs several times the signature check it guards.
//
// Numbers are not supported except through Raw: no Lantern format has one.
package strictjson

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors that callers branch on.
var (
	ErrSyntax       = errors.New("invalid JSON")
	ErrUnknownField = errors.New("unknown field")
	ErrDuplicate    = errors.New("duplicate field")
	ErrType         = errors.New("wrong type")
)

// Error is an error at a byte offset of the document.
type Error struct {
	Offset int
	Err    error  // one of the sentinels
	Msg    string // what was found, for people
}

func (e *Error) Error() string { return fmt.Sprintf("%v at offset %d: %s", e.Err, e.Offset, e.Msg) }

func (e *Error) Unwrap() error { return e.Err }

// Decoder reads one JSON value.
type Decoder struct {
	data []byte
	pos  int
}

// NewDecoder returns a Decoder of data. It keeps data: slices it returns
// alias it.
func NewDecoder(data []byte) *Decoder { return &Decoder{data: data} }

// Offset returns the position of the next byte to read.
func (d *Decoder) Offset() int { return d.pos }

func (d *Decoder) errorf(sentinel error, format string, args ...any) error {
	return &Error{Offset: d.pos, Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

func (d *Decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end (a NUL byte in the
// input is no JSON token either, so callers need not tell the two apart).
func (d *Decoder) peek() byte {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

func (d *Decoder) found() string {
	if d.pos >= len(d.data) {
		return "the end of the input"
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return "a number"
		}
		return fmt.Sprintf("%q", c)
	}
}

// End checks that nothing but white space follows the value.
func (d *Decoder) End() error {
	d.skipSpace()
	if d.pos < len(d.data) {
		return d.errorf(ErrSyntax, "data after the JSON value")
	}
	return nil
}

// Object reads an object, calling field for each member with its name; field
// must read the value (or return an error, such as UnknownField). The name
// slice is valid only during the call; `switch string(name)` does not
// allocate. A name given twice is an ErrDuplicate error.
func (d *Decoder) Object(field func(d *Decoder, name []byte) error) error {
	if d.peek() != '{' {
		return d.errorf(ErrType, "want an object, found %s", d.found())
	}
	d.pos++
	// Names seen so far: a short list on the stack for the usual handful of
	// fields, a map past that so that a huge object costs linear time.
	var seenArr [16][]byte
	seen := seenArr[:0]
	var seenMap map[string]struct{}
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.errorf(ErrSyntax, "want a field name, found %s", d.found())
		}
		at := d.pos
		name, err := d.StringBytes()
		if err != nil {
			return err
		}
		dup := false
		if seenMap != nil {
			_, dup = seenMap[string(name)]
			seenMap[string(name)] = struct{}{}
		} else {
			for _, s := range seen {
				if string(s) == string(name) {
					dup = true
					break
				}
			}
			if seen = append(seen, name); len(seen) == len(seenArr) {
				seenMap = make(map[string]struct{}, 2*len(seenArr))
				for _, s := range seen {
					seenMap[string(s)] = struct{}{}
				}
			}
		}
		if dup {
			return &Error{Offset: at, Err: ErrDuplicate, Msg: fmt.Sprintf("%q", name)}
		}
		if d.peek() != ':' {
			return d.errorf(ErrSyntax, "want ':' after field name %q, found %s", name, d.found())
		}
		d.pos++
		if err := field(d, name); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.errorf(ErrSyntax, "want ',' or '}' after field %q, found %s", name, d.found())
		}
	}
}

// UnknownField returns the error for a field the caller does not know.
func (d *Decoder) UnknownField(name []byte) error {
	return d.errorf(ErrUnknownField, "%q", name)
}

// Array reads an array, calling elem for each element.
func (d *Decoder) Array(elem func(d *Decoder) error) error {
	if d.peek() != '[' {
		return d.errorf(ErrType, "want an array, found %s", d.found())
	}
	d.pos++
	if d.peek() == ']' {
		d.pos++
		return nil
	}
	for {
		if err := elem(d); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return nil
		default:
			return d.errorf(ErrSyntax, "want ',' or ']' in an array, found %s", d.found())
		}
	}
}

// Null consumes a null if one is next and reports whether it did.
func (d *Decoder) Null() bool {
	if d.peek() == 'n' && d.literal("null") {
		return true
	}
	return false
}

func (d *Decoder) literal(lit string) bool {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	return false
}

// Bool reads true or false.
func (d *Decoder) Bool() (bool, error) {
	switch d.peek() {
	case 't':
		if d.literal("true") {
			return true, nil
		}
	case 'f':
		if d.literal("false") {
			return false, nil
		}
	}
	return false, d.errorf(ErrType, "want true or false, found %s", d.found())
}

// PlainString reads a string whose contents the caller checks against an
// alphabet of printable ASCII that has neither '"' nor backslash, such as
// base64 or hex: it ends at the first quote and decodes no escapes, so it
// costs one vectorised search however long the string. A caller that let
// any other byte through would accept invalid JSON.
func (d *Decoder) PlainString() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.errorf(ErrType, "want a string, found %s", d.found())
	}
	start := d.pos + 1
	q := bytes.IndexByte(d.data[start:], '"')
	if q < 0 {
		d.pos = len(d.data)
		return nil, d.errorf(ErrSyntax, "unterminated string")
	}
	d.pos = start + q + 1
	return d.data[start : start+q], nil
}

// String reads a string.
func (d *Decoder) String() (string, error) {
	b, err := d.StringBytes()
	return string(b), err
}

// StringBytes reads a string and returns its contents, aliasing the input
// where it holds no escapes.
func (d *Decoder) StringBytes() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.errorf(ErrType, "want a string, found %s", d.found())
	}
	start := d.pos + 1
	i := start + plainPrefix(d.data[start:])
	if i < len(d.data) && d.data[i] == '"' {
		d.pos = i + 1
		return d.data[start:i], nil
	}
	return d.stringSlow(start, i)
}

// plainPrefix returns the length of the prefix of b that holds no '"', no
// backslash, no control character and no byte above 0x7f: bytes a string
// can be taken over as they stand. It looks at eight bytes at a time.
func plainPrefix(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		q := v ^ (ones * '"')
		bs := v ^ (ones * '\\')
		// (x-ones)&^x has a high bit set if and only if some byte of x is
		// zero; v-0x20.. if some byte of v is below 0x20; v if some byte is
		// above 0x7f.
		if ((q-ones)&^q|(bs-ones)&^bs|(v-ones*0x20)|v)&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}

// stringSlow finishes a string that starts at start and holds something
// other than plain ASCII at i: an escape, a control character, UTF-8, or the
// end of the input.
func (d *Decoder) stringSlow(start, i int) ([]byte, error) {
	for i < len(d.data) {
		switch c := d.data[i]; {
		case c == '"':
			s := d.data[start:i]
			if !utf8.Valid(s) {
				return nil, d.errorf(ErrSyntax, "string is not valid UTF-8")
			}
			d.pos = i + 1
			return s, nil
		case c == '\\':
			return d.unescape(start, i)
		case c < 0x20:
			d.pos = i
			return nil, d.errorf(ErrSyntax, "control character %q in a string", c)
		}
		i++
		i += plainPrefix(d.data[i:])
	}
	d.pos = len(d.data)
	return nil, d.errorf(ErrSyntax, "unterminated string")
}

// unescape decodes a string that has escapes, from start (after the opening
// quote); the first backslash is at i.
func (d *Decoder) unescape(start, i int) ([]byte, error) {
	out := make([]byte, 0, i-start+16)
	if !utf8.Valid(d.data[start:i]) {
		d.pos = start
		return nil, d.errorf(ErrSyntax, "string is not valid UTF-8")
	}
	out = append(out, d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return out, nil
		case c < 0x20:
			d.pos = i
			return nil, d.errorf(ErrSyntax, "control character %q in a string", c)
		case c == '\\':
			if i+1 >= len(d.data) {
				d.pos = i
				return nil, d.errorf(ErrSyntax, "unterminated string")
			}
			switch e := d.data[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i += 2
			case 'b':
				out, i = append(out, '\b'), i+2
			case 'f':
				out, i = append(out, '\f'), i+2
			case 'n':
				out, i = append(out, '\n'), i+2
			case 'r':
				out, i = append(out, '\r'), i+2
			case 't':
				out, i = append(out, '\t'), i+2
			case 'u':
				r, n := d.hex4(i + 2)
				if n < 0 {
					d.pos = i
					return nil, d.errorf(ErrSyntax, "bad \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, n2 := rune(-1), -1
					if i+1 < len(d.data) && d.data[i] == '\\' && d.data[i+1] == 'u' {
						r2, n2 = d.hex4(i + 2)
					}
					dec := utf16.DecodeRune(r, r2)
					if n2 < 0 || dec == utf8.RuneError {
						d.pos = i
						return nil, d.errorf(ErrSyntax, "lone UTF-16 surrogate in a \\u escape")
					}
					r, i = dec, i+6
				}
				out = utf8.AppendRune(out, r)
			default:
				d.pos = i
				return nil, d.errorf(ErrSyntax, "bad escape \\%c", e)
			}
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size <= 1 {
				d.pos = i
				return nil, d.errorf(ErrSyntax, "string is not valid UTF-8")
			}
			out = append(out, d.data[i:i+size]...)
			i += size
		}
	}
	d.pos = len(d.data)
	return nil, d.errorf(ErrSyntax, "unterminated string")
}

func (d *Decoder) hex4(i int) (rune, int) {
	if i+4 > len(d.data) {
		return 0, -1
	}
	var r rune
	for _, c := range d.data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, -1
		}
	}
	return r, 4
}

// StringMap reads an object of string values.
func (d *Decoder) StringMap() (map[string]string, error) {
	m := map[string]string{}
	err := d.Object(func(d *Decoder, name []byte) error {
		v, err := d.String()
		if err != nil {
			return err
		}
		m[string(name)] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Value runs fn, which reads one value, and returns the bytes of that value
// as they stand in the input.
func (d *Decoder) Value(fn func(d *Decoder) error) ([]byte, error) {
	d.skipSpace()
	start := d.pos
	if err := fn(d); err != nil {
		return nil, err
	}
	return d.data[start:d.pos], nil
}

// Raw reads any JSON value, numbers included, checks its syntax (strictly:
// duplicate field names are refused here too) and returns its bytes.
func (d *Decoder) Raw() ([]byte, error) {
	d.skipSpace()
	start := d.pos
	if err := d.skip(0); err != nil {
		return nil, err
	}
	return d.data[start:d.pos], nil
}

const maxDepth = 64

func (d *Decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.errorf(ErrSyntax, "nested more than %d deep", maxDepth)
	}
	switch c := d.peek(); {
	case c == '{':
		return d.Object(func(d *Decoder, _ []byte) error { return d.skip(depth + 1) })
	case c == '[':
		return d.Array(func(d *Decoder) error { return d.skip(depth + 1) })
	case c == '"':
		_, err := d.StringBytes()
		return err
	case c == 't' || c == 'f':
		_, err := d.Bool()
		return err
	case c == 'n':
		if d.Null() {
			return nil
		}
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return d.errorf(ErrSyntax, "want a JSON value, found %s", d.found())
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *Decoder) number() error {
	i := d.pos
	digits := func() bool {
		s := i
		for i < len(d.data) && '0' <= d.data[i] && d.data[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(d.data) && d.data[i] == '-' {
		i++
	}
	switch {
	case i < len(d.data) && d.data[i] == '0':
		i++
	case !digits():
		return d.errorf(ErrSyntax, "bad number")
	}
	if i < len(d.data) && d.data[i] == '.' {
		i++
		if !digits() {
			return d.errorf(ErrSyntax, "bad number")
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if !digits() {
			return d.errorf(ErrSyntax, "bad number")
		}
	}
	d.pos = i
	return nil
}
