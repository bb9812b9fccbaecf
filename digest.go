package lantern

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DigestPrefix is the algorithm prefix of every canonical Digest string.
const DigestPrefix = "sha256:"

// ErrDigestMismatch reports bytes whose digest is not the one claimed.
var ErrDigestMismatch = errors.New("digest mismatch")

// Digest is the canonical name of a byte string: its SHA-256. The zero value
// is "no digest". Two Digests are equal exactly when they name the same bytes,
// so == is the comparison that decides "reproduced".
type Digest struct {
	sum [sha256.Size]byte
	set bool
}

// ParseDigest parses the canonical form "sha256:" followed by 64 lower-case
// hex digits. Anything else is an error that says what was wrong.
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return Digest{}, fmt.Errorf("digest %q: want %q followed by 64 hex digits", truncate(s), DigestPrefix)
	}
	return digestFromHex(s, hexPart)
}

// DigestFromHex makes a Digest from the bare 64 lower-case hex digits of a
// SHA-256, as in-toto digest sets carry it.
func DigestFromHex(h string) (Digest, error) {
	return digestFromHex(h, h)
}

// digestFromHex reads a Digest from h, 64 lower-case hex digits, part of
// whole (for errors). It takes bytes as well as a string, so that
// UnmarshalText reads JSON's bytes without copying them into a string first.
func digestFromHex[T string | []byte](whole, h T) (Digest, error) {
	if len(h) != 2*sha256.Size {
		return Digest{}, fmt.Errorf("digest %q: want 64 hex digits, have %d", truncate(string(whole)), len(h))
	}
	var d Digest
	for i := 0; i < sha256.Size; i++ {
		hi, lo := hexValue[h[2*i]], hexValue[h[2*i+1]]
		if hi|lo == 0xff {
			at := 2 * i
			if hi != 0xff {
				at++
			}
			return Digest{}, fmt.Errorf("digest %q: character %q at %d is not a lower-case hex digit", truncate(string(whole)), h[at], at)
		}
		d.sum[i] = hi<<4 | lo
	}
	d.set = true
	return d, nil
}

// hexValue maps a lower-case hex digit to its value and anything else to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// MustParseDigest is ParseDigest for constants in tests and tables; it panics
// on a malformed string.
func MustParseDigest(s string) Digest {
	d, err := ParseDigest(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DigestOf returns the Digest of b.
func DigestOf(b []byte) Digest {
	return Digest{sum: sha256.Sum256(b), set: true}
}

// DigestFromSum wraps a SHA-256 sum computed elsewhere.
func DigestFromSum(sum [sha256.Size]byte) Digest {
	return Digest{sum: sum, set: true}
}

// DigestReader hashes everything r yields and returns the Digest and the
// number of bytes read.
func DigestReader(r io.Reader) (Digest, int64, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(h, r, buf)
	if err != nil {
		return Digest{}, n, fmt.Errorf("hash: %w", err)
	}
	var d Digest
	h.Sum(d.sum[:0])
	d.set = true
	return d, n, nil
}

// DigestFile hashes the file at path.
func DigestFile(path string) (Digest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	d, n, err := DigestReader(f)
	if err != nil {
		return Digest{}, n, fmt.Errorf("%s: %w", path, err)
	}
	return d, n, nil
}

// Equal reports whether d and o name the same bytes; it is d == o, spelled
// out for go-cmp and for readers.
func (d Digest) Equal(o Digest) bool { return d == o }

// IsZero reports whether d is the zero Digest ("no digest").
func (d Digest) IsZero() bool { return !d.set }

// Hex returns the 64 hex digits without the algorithm prefix, or "" for the
// zero Digest.
func (d Digest) Hex() string {
	if !d.set {
		return ""
	}
	return hex.EncodeToString(d.sum[:])
}

// Sum returns the raw SHA-256.
func (d Digest) Sum() [sha256.Size]byte { return d.sum }

// String returns the canonical form "sha256:<hex>", or "" for the zero Digest.
func (d Digest) String() string {
	if !d.set {
		return ""
	}
	var b [len(DigestPrefix) + 2*sha256.Size]byte
	return string(d.appendText(b[:0]))
}

// appendText appends the canonical form of a set d to b.
func (d Digest) appendText(b []byte) []byte {
	b = append(b, DigestPrefix...)
	return hex.AppendEncode(b, d.sum[:])
}

// Short returns "sha256:" and the first 12 hex digits, for people to read.
func (d Digest) Short() string {
	if !d.set {
		return ""
	}
	return DigestPrefix + d.Hex()[:12]
}

// MarshalText implements encoding.TextMarshaler. The zero Digest marshals to
// the empty string.
func (d Digest) MarshalText() ([]byte, error) {
	if !d.set {
		return []byte{}, nil
	}
	return d.appendText(make([]byte, 0, len(DigestPrefix)+2*sha256.Size)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. The empty string
// unmarshals to the zero Digest.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Digest{}
		return nil
	}
	hexPart, ok := bytes.CutPrefix(b, []byte(DigestPrefix))
	if !ok {
		return fmt.Errorf("digest %q: want %q followed by 64 hex digits", truncate(string(b)), DigestPrefix)
	}
	p, err := digestFromHex(b, hexPart)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// truncate keeps error messages about hostile input short.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
