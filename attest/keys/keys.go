// Package keys reads and writes signing keys in cosign's key-file format, so
// that a key made by `lantern keygen` works with the cosign CLI and a key made
// by `cosign generate-key-pair` works with Lantern.
//
// The format: an ECDSA P-256 private key, PKCS#8 DER, encrypted with
// go-securesystemslib's scrypt + NaCl secretbox scheme, in a PEM block of type
// "ENCRYPTED SIGSTORE PRIVATE KEY" (older cosign wrote "ENCRYPTED COSIGN
// PRIVATE KEY"; both are read). The public key is PKIX DER in a "PUBLIC KEY"
// PEM block. A key's id is "sha256:" of its public key's DER.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/dsse"
)

// PEM block types of cosign's key files.
const (
	PrivateKeyPEMType       = "ENCRYPTED SIGSTORE PRIVATE KEY"
	LegacyPrivateKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"
	PublicKeyPEMType        = "PUBLIC KEY"
)

// Errors that callers branch on.
var (
	ErrKeyType      = errors.New("wrong key type")
	ErrPassword     = errors.New("wrong password or corrupt key")
	ErrNotPEM       = errors.New("not a PEM key file")
	ErrBadSignature = errors.New("not made by key")
)

var (
	_ dsse.Signer         = (*Private)(nil)
	_ dsse.SHA256Verifier = (*Public)(nil)
)

// Public is an ECDSA P-256 public key with its id.
type Public struct {
	key *ecdsa.PublicKey
	der []byte
	id  lantern.Digest
}

// Private is an ECDSA P-256 private key.
type Private struct {
	key *ecdsa.PrivateKey
	pub *Public
}

// Generate makes a new P-256 key pair.
func Generate() (*Private, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return newPrivate(k)
}

func newPrivate(k *ecdsa.PrivateKey) (*Private, error) {
	pub, err := newPublic(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Private{key: k, pub: pub}, nil
}

func newPublic(k *ecdsa.PublicKey) (*Public, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: ECDSA on %s, want P-256", ErrKeyType, k.Curve.Params().Name)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return &Public{key: k, der: der, id: lantern.DigestOf(der)}, nil
}

// Public returns the public half of k.
func (k *Private) Public() *Public { return k.pub }

// ID returns the key id of k's public key.
func (k *Private) ID() lantern.Digest { return k.pub.id }

// Sign signs data (hashed with SHA-256) and returns an ASN.1 DER signature,
// as cosign does.
func (k *Private) Sign(data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	return ecdsa.SignASN1(rand.Reader, k.key, h[:])
}

// Crypto returns the key as a crypto.Signer.
func (k *Private) Crypto() crypto.Signer { return k.key }

// MarshalEncrypted returns the private key as cosign writes it: encrypted with
// password (which may be empty) in an "ENCRYPTED SIGSTORE PRIVATE KEY" block.
func (k *Private) MarshalEncrypted(password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: enc}), nil
}

// ParsePrivate reads an encrypted private key file written by Lantern or by
// cosign generate-key-pair.
func ParsePrivate(pemBytes, password []byte) (*Private, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("private key: %w: no PEM block found", ErrNotPEM)
	}
	if block.Type != PrivateKeyPEMType && block.Type != LegacyPrivateKeyPEMType {
		return nil, fmt.Errorf("private key: %w: PEM type %q, want %q as cosign generate-key-pair or lantern keygen write it", ErrKeyType, block.Type, PrivateKeyPEMType)
	}
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, fmt.Errorf("private key: %w (%v)", ErrPassword, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: PKCS#8: %w", err)
	}
	ec, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %w: %T, want ECDSA P-256", ErrKeyType, parsed)
	}
	return newPrivate(ec)
}

// ParsePublic reads a PKIX "PUBLIC KEY" PEM file, as cosign writes it.
func ParsePublic(pemBytes []byte) (*Public, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("public key: %w: no PEM block found", ErrNotPEM)
	}
	if block.Type != PublicKeyPEMType {
		return nil, fmt.Errorf("public key: %w: PEM type %q, want %q (give the .pub file, not the private key)", ErrKeyType, block.Type, PublicKeyPEMType)
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: PKIX: %w", err)
	}
	ec, ok := parsed.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %w: %s, want ECDSA P-256", ErrKeyType, keyTypeName(parsed))
	}
	return newPublic(ec)
}

// MarshalPEM returns the public key as a "PUBLIC KEY" PEM block.
func (k *Public) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: k.der})
}

// ID returns the key id: "sha256:" of the public key's PKIX DER.
func (k *Public) ID() lantern.Digest { return k.id }

// Crypto returns the key as a crypto.PublicKey.
func (k *Public) Crypto() *ecdsa.PublicKey { return k.key }

// Verify checks an ASN.1 DER ECDSA signature over the SHA-256 of data.
func (k *Public) Verify(data, sig []byte) error {
	return k.VerifySHA256(sha256.Sum256(data), sig)
}

// VerifySHA256 checks an ASN.1 DER ECDSA signature over a SHA-256 sum.
func (k *Public) VerifySHA256(sum [sha256.Size]byte, sig []byte) error {
	if !ecdsa.VerifyASN1(k.key, sum[:], sig) {
		return fmt.Errorf("%w %s", ErrBadSignature, k.id)
	}
	return nil
}

func keyTypeName(k any) string {
	switch k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA"
	default:
		name := fmt.Sprintf("%T", k)
		switch name {
		case "*rsa.PublicKey":
			return "RSA"
		case "ed25519.PublicKey":
			return "Ed25519"
		}
		return name
	}
}
