package rebuilderd_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/lanternfarm/lantern/attest/rebuilderd"
)

// FuzzRead reads links, which come from rebuilders the caller may not trust
// at all: Read must never panic, and a link it accepts must verify or fail
// with one of the two errors that say why.
func FuzzRead(f *testing.F) {
	good := readSample(f, sampleLink)
	f.Add(good)
	f.Add(readSample(f, sampleInvalid))
	f.Add(bytes.ReplaceAll(good, []byte(`":`), []byte("\" :\n ")))
	f.Add([]byte(`{"signed":{"_type":"link","name":"\u00e9","materials":{},"products":{},"byproducts":{"return-value":-1,"x":[1,{"a":null}]},"command":["a\"b"],"environment":{"k":true}},"signatures":[{"keyid":"1ae6d32cb5bb8a98312106de28e50af7e09a9b294d51df459537908ac1288b8f","sig":"` + string(bytes.Repeat([]byte("00"), 64)) + `"}]}`))
	f.Add([]byte(`{"signed":{},"signatures":[]}`))
	key, err := rebuilderd.ParsePublicKey(readSample(f, sampleKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := rebuilderd.Read(b)
		if err != nil {
			if !errors.Is(err, rebuilderd.ErrMalformed) && !errors.Is(err, rebuilderd.ErrTooLarge) {
				t.Fatalf("Read() = %v, want %v or %v", err, rebuilderd.ErrMalformed, rebuilderd.ErrTooLarge)
			}
			return
		}
		if len(l.KeyIDs()) == 0 {
			t.Fatal("Read() accepted a link with no signatures")
		}
		for name, d := range l.Products() {
			if d.IsZero() {
				t.Fatalf("Products()[%q] is the zero Digest", name)
			}
		}
		verified, err := l.Verify(key)
		switch {
		case err == nil:
			if len(verified) != 1 || !verified[0].Equal(ed25519.PublicKey(key)) {
				t.Fatalf("Verify() = %x, nil; want the key", verified)
			}
		case errors.Is(err, rebuilderd.ErrSignature), errors.Is(err, rebuilderd.ErrNotTrusted):
			if len(verified) != 0 {
				t.Fatalf("Verify() = %x, %v; want no keys", verified, err)
			}
		default:
			t.Fatalf("Verify() = %v", err)
		}
	})
}
