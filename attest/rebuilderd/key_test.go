package rebuilderd_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/attest/rebuilderd"
)

func TestParsePublicKey(t *testing.T) {
	sample := readSample(t, sampleKey)
	k, err := rebuilderd.ParsePublicKey(sample)
	if err != nil {
		t.Fatalf("ParsePublicKey(sample) = %v", err)
	}
	// Go's own parser refuses the sample (the NULL parameter) but writes the
	// RFC 8410 form, without it, which must read as the same key.
	block, _ := pem.Decode(sample)
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		t.Log("x509.ParsePKIXPublicKey now reads the sample key")
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	plain := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if got, err := rebuilderd.ParsePublicKey(plain); err != nil || !got.Equal(k) {
		t.Errorf("ParsePublicKey(without NULL) = %x, %v; want %x", got, err, k)
	}

	pemOf := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}) }
	// Keys of other kinds from the shared corpus of bad inputs.
	bad := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bad", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got, err := rebuilderd.ParsePublicKey(bad("key-ed25519.pub")); err != nil || len(got) != ed25519.PublicKeySize {
		t.Errorf("ParsePublicKey(key-ed25519.pub) = %x, %v; want an Ed25519 key", got, err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM block"},
		{"garbage", []byte("not a key"), "no PEM block"},
		{"private key block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), `"PRIVATE KEY"`},
		{"trailing DER", pemOf(slices.Concat(block.Bytes, []byte{0})), "after the SubjectPublicKeyInfo"},
		{"trailing PEM", append(append([]byte{}, sample...), sample...), "after the PEM block"},
		{"short key", pemOf(slices.Concat([]byte{0x30, 0x2b, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00, 0x03, 0x20, 0x00}, k[:31])), "248 bits"},
		{"other parameter", pemOf(slices.Concat([]byte{0x30, 0x2d, 0x30, 0x08, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x02, 0x01, 0x00, 0x03, 0x21, 0x00}, k)), "parameters"},
		{"extra field", pemOf(slices.Concat([]byte{0x30, 0x2e, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00}, k, []byte{0x05, 0x00})), "parameters"},
		{"RSA", bad("key-rsa.pub"), "an RSA key"},
		{"ECDSA P-256", bad("key.pub"), "an ECDSA key"},
		{"ECDSA P-384", bad("key-p384.pub"), "an ECDSA key"},
		{"certificate", bad("key-certificate.pub"), `"CERTIFICATE"`},
		{"OpenSSH", bad("key-ssh.pub"), "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rebuilderd.ParsePublicKey(tc.in)
			if !errors.Is(err, rebuilderd.ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParsePublicKey() = %x, %v; want %v with %q", got, err, rebuilderd.ErrKey, tc.want)
			}
		})
	}
}
