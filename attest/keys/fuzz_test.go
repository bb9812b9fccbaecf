package keys_test

import (
	"crypto/elliptic"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
)

// FuzzParsePublic reads public key files, which come from other people. It
// leaves ParsePrivate alone: a private key file is the user's own, and each
// attempt to open one costs an scrypt of about 100 ms.
func FuzzParsePublic(f *testing.F) {
	k, err := keys.Generate()
	if err != nil {
		f.Fatal(err)
	}
	pub := k.Public().MarshalPEM()
	f.Add(pub)
	f.Add(append([]byte("# the builder's key\n"), pub...))
	f.Add(append(append([]byte{}, pub...), pub...))
	// The corpus of bad inputs shared with package attest: keys of other
	// types, a private key, a certificate, an OpenSSH key.
	for _, glob := range []string{"*.pub", "*.key"} {
		names, err := filepath.Glob(filepath.Join("..", "..", "testdata", "bad", glob))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := keys.ParsePublic(b)
		if err != nil {
			return
		}
		if k.Crypto().Curve != elliptic.P256() {
			t.Fatalf("ParsePublic accepted a key on %s", k.Crypto().Curve.Params().Name)
		}
		out := k.MarshalPEM()
		block, _ := pem.Decode(out)
		if block == nil || block.Type != keys.PublicKeyPEMType {
			t.Fatalf("MarshalPEM() = %q, want one %q block", out, keys.PublicKeyPEMType)
		}
		if got, want := k.ID(), lantern.DigestOf(block.Bytes); got != want {
			t.Fatalf("ID() = %s, want the sha256 of the key's DER %s", got, want)
		}
		again, err := keys.ParsePublic(out)
		if err != nil {
			t.Fatalf("ParsePublic(MarshalPEM()) = %v", err)
		}
		if again.ID() != k.ID() {
			t.Fatalf("key id changed in a round trip: %s, then %s", k.ID(), again.ID())
		}
	})
}
