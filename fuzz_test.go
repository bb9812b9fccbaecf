package lantern_test

import (
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
)

func FuzzParseDigest(f *testing.F) {
	good := lantern.DigestOf([]byte("hello")).String()
	for _, s := range []string{
		good,
		strings.TrimPrefix(good, lantern.DigestPrefix),
		strings.ToUpper(good),
		"sha512:" + strings.TrimPrefix(good, lantern.DigestPrefix),
		good[:len(good)-1],
		good + "0",
		"",
		"sha256:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := lantern.ParseDigest(s); err == nil {
			// There is one way to write a digest: what parses is canonical.
			if d.IsZero() || d.String() != s {
				t.Fatalf("ParseDigest(%q) = %q, want the input back", s, d)
			}
			again, err := lantern.ParseDigest(d.String())
			if err != nil || again != d {
				t.Fatalf("ParseDigest(%q) = %v, %v; want %v", d.String(), again, err, d)
			}
		}

		if d, err := lantern.DigestFromHex(s); err == nil {
			if d.Hex() != s {
				t.Fatalf("DigestFromHex(%q).Hex() = %q, want the input back", s, d.Hex())
			}
			if p, err := lantern.ParseDigest(lantern.DigestPrefix + s); err != nil || p != d {
				t.Fatalf("ParseDigest(%q) = %v, %v; want %v as DigestFromHex gave", lantern.DigestPrefix+s, p, err, d)
			}
		}

		var d lantern.Digest
		if err := d.UnmarshalText([]byte(s)); err != nil {
			if _, perr := lantern.ParseDigest(s); perr == nil {
				t.Fatalf("UnmarshalText(%q) = %v, but ParseDigest accepts it", s, err)
			} else if perr.Error() != err.Error() {
				t.Fatalf("UnmarshalText(%q) = %v, ParseDigest says %v: want one message", s, err, perr)
			}
			return
		}
		text, err := d.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v) = %v", d, err)
		}
		if string(text) != s {
			t.Fatalf("MarshalText(UnmarshalText(%q)) = %q, want the input back", s, text)
		}
		var again lantern.Digest
		if err := again.UnmarshalText(text); err != nil || again != d {
			t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", text, again, err, d)
		}
	})
}
