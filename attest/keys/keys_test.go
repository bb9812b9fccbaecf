package keys_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
)

func TestEncryptedRoundTrip(t *testing.T) {
	for _, pw := range []string{"", "correct horse battery staple"} {
		t.Run("password="+pw, func(t *testing.T) {
			k, err := keys.Generate()
			if err != nil {
				t.Fatal(err)
			}
			b, err := k.MarshalEncrypted([]byte(pw))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n") {
				t.Errorf("private key file starts %q, want cosign's ENCRYPTED SIGSTORE PRIVATE KEY block", b[:40])
			}
			back, err := keys.ParsePrivate(b, []byte(pw))
			if err != nil {
				t.Fatalf("ParsePrivate() = %v", err)
			}
			if back.ID() != k.ID() {
				t.Errorf("ID() after round trip = %s, want %s", back.ID(), k.ID())
			}
			if _, err := keys.ParsePrivate(b, []byte(pw+"x")); !errors.Is(err, keys.ErrPassword) {
				t.Errorf("ParsePrivate(wrong password) = %v, want %v", err, keys.ErrPassword)
			}
			// Older cosign wrote another block type around the same bytes.
			block, _ := pem.Decode(b)
			block.Type = keys.LegacyPrivateKeyPEMType
			if legacy, err := keys.ParsePrivate(pem.EncodeToMemory(block), []byte(pw)); err != nil || legacy.ID() != k.ID() {
				t.Errorf("ParsePrivate(legacy block) = %v, %v; want key %s", legacy, err, k.ID())
			}
		})
	}
}

func TestPublicKeyFileAndID(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := k.Public().MarshalPEM()
	block, _ := pem.Decode(pemBytes)
	if block.Type != "PUBLIC KEY" {
		t.Fatalf("public key block %q, want PUBLIC KEY", block.Type)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Crypto().Public())
	if err != nil {
		t.Fatal(err)
	}
	want := lantern.DigestFromSum(sha256.Sum256(der))
	if got := k.ID(); got != want {
		t.Errorf("ID() = %s, want sha256 of the PKIX DER %s", got, want)
	}
	pub, err := keys.ParsePublic(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID() != want {
		t.Errorf("ParsePublic().ID() = %s, want %s", pub.ID(), want)
	}
}

func TestSignVerify(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("DSSEv1 28 application/vnd.in-toto+json 2 {}")
	sig, err := k.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(data, sig); err != nil {
		t.Errorf("Verify(own signature) = %v", err)
	}
	if err := other.Public().Verify(data, sig); !errors.Is(err, keys.ErrBadSignature) {
		t.Errorf("Verify(other key) = %v, want %v", err, keys.ErrBadSignature)
	}
	if err := k.Public().Verify(append(data, '!'), sig); !errors.Is(err, keys.ErrBadSignature) {
		t.Errorf("Verify(changed data) = %v, want %v", err, keys.ErrBadSignature)
	}
}

func TestParseErrors(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := k.MarshalEncrypted(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.ParsePublic(priv); !errors.Is(err, keys.ErrKeyType) || !strings.Contains(err.Error(), "give the .pub file") {
		t.Errorf("ParsePublic(private key file) = %v, want %v telling to give the .pub", err, keys.ErrKeyType)
	}
	if _, err := keys.ParsePublic([]byte("not a key")); !errors.Is(err, keys.ErrNotPEM) {
		t.Errorf("ParsePublic(text) = %v, want %v", err, keys.ErrNotPEM)
	}
	if _, err := keys.ParsePrivate(k.Public().MarshalPEM(), nil); !errors.Is(err, keys.ErrKeyType) {
		t.Errorf("ParsePrivate(public key file) = %v, want %v", err, keys.ErrKeyType)
	}
}
