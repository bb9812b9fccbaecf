package rebuilderd

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/lanternfarm/lantern/internal/strictjson"
)

func canonical(t *testing.T, in string) (string, error) {
	t.Helper()
	raw, err := strictjson.NewDecoder([]byte(in)).Raw()
	if err != nil {
		t.Fatalf("strictjson Raw(%s) = %v", in, err)
	}
	out, err := appendCanonical(nil, raw)
	return string(out), err
}

// The wanted outputs are what securesystemslib's encode_canonical
// (formats.py) makes of the same inputs; it refuses floats, and writes a
// control character as it is where in-toto-rs escapes it, so we refuse both.
func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"key order", `{"b":1,"a":2,"_c":3,"B":4}`, `{"B":4,"_c":3,"a":2,"b":1}`},
		{"white space", " { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } } ", `{"a":[1,2],"b":{}}`},
		{"nested", `{"z":{"y":[{"b":true,"a":null}],"x":"s"},"a":[]}`, `{"a":[],"z":{"x":"s","y":[{"a":null,"b":true}]}}`},
		{"escapes", `"a\"b\\c\/d"`, `"a\"b\\c/d"`},
		{"unicode", `"\u00e9t\u00e9 \ud83d\ude00 ünï"`, "\"été 😀 ünï\""},
		{"sort by bytes", `{"é":1,"z":2,"\u0100":3}`, `{"z":2,"é":1,"Ā":3}`},
		{"integers", `[0,-1,18446744073709551615,-9223372036854775808]`, `[0,-1,18446744073709551615,-9223372036854775808]`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := canonical(t, tc.in)
			if err != nil || got != tc.want {
				t.Errorf("appendCanonical(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
	for _, in := range []string{`1.5`, `1e3`, `-0`, `18446744073709551616`, `-9223372036854775809`, `"a\nb"`, `{"\t":1}`, `"\u0000"`} {
		if got, err := canonical(t, in); !errors.Is(err, errCanonical) {
			t.Errorf("appendCanonical(%s) = %s, %v; want %v", in, got, err, errCanonical)
		}
	}
}

// KeyID writes the key dictionary by hand; it must be the dictionary's
// canonical form.
func TestKeyIDIsCanonical(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	pub[0], pub[31] = 0xab, 0x01
	dict := `{"scheme":"ed25519","keyval":{"public":"` + hex.EncodeToString(pub) + `"},"keytype":"ed25519","keyid_hash_algorithms":["sha256","sha512"]}`
	c, err := canonical(t, dict)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256Hex([]byte(c))
	if got := KeyID(pub); got != sum {
		t.Errorf("KeyID() = %s, want sha256(%s) = %s", got, c, sum)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
