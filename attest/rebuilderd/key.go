package rebuilderd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrKey reports a public key that is not an Ed25519 key in a PEM "PUBLIC
// KEY" block.
var ErrKey = errors.New("not an Ed25519 public key")

// oidEd25519 is id-Ed25519 (RFC 8410).
var oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}

// Algorithms that a "PUBLIC KEY" block often holds instead, named in errors.
var otherAlgorithms = map[string]string{
	"1.2.840.113549.1.1.1": "RSA",
	"1.2.840.10045.2.1":    "ECDSA",
	"1.3.101.113":          "Ed448",
	"1.3.101.110":          "X25519",
}

// The two DER encodings of an Ed25519 SubjectPublicKeyInfo, up to the key:
// RFC 8410's, with no algorithm parameters, and the one rebuilderd publishes,
// with an explicit NULL. DER has one encoding per value, so a key that is
// not one of these byte for byte is refused.
var (
	spkiPrefix     = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
	spkiNullPrefix = []byte{0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00}
)

// ParsePublicKey reads an Ed25519 public key from a PEM "PUBLIC KEY" block
// holding a PKIX SubjectPublicKeyInfo, with or without an explicit NULL
// algorithm parameter. rebuilderd publishes its keys with the NULL, which
// x509.ParsePKIXPublicKey refuses.
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(pemBytes)
	switch {
	case block == nil:
		return nil, fmt.Errorf("parse public key: %w: no PEM block", ErrKey)
	case block.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("parse public key: %w: PEM block %q, want \"PUBLIC KEY\"", ErrKey, block.Type)
	case len(block.Headers) != 0:
		return nil, fmt.Errorf("parse public key: %w: PEM headers in a public key", ErrKey)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fmt.Errorf("parse public key: %w: data after the PEM block", ErrKey)
	}
	key, err := parseSPKI(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w: %v", ErrKey, err)
	}
	return key, nil
}

// parseSPKI reads the DER of an Ed25519 SubjectPublicKeyInfo. encoding/asn1
// does the parsing, so that a key of another kind gets an error that says
// which; then the bytes must be exactly one of the two encodings, which
// leaves nothing for encoding/asn1's leniencies (extra fields at the end of
// a SEQUENCE) to let through.
func parseSPKI(der []byte) (ed25519.PublicKey, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil {
		return nil, fmt.Errorf("not a SubjectPublicKeyInfo: %v", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the SubjectPublicKeyInfo", len(rest))
	}
	if oid := spki.Algorithm.Algorithm; !oid.Equal(oidEd25519) {
		if name, ok := otherAlgorithms[oid.String()]; ok {
			return nil, fmt.Errorf("an %s key (algorithm %s), want Ed25519 (%s)", name, oid, oidEd25519)
		}
		return nil, fmt.Errorf("algorithm %s, want Ed25519 (%s)", oid, oidEd25519)
	}
	if n := spki.PublicKey.BitLength; n != 8*ed25519.PublicKeySize {
		return nil, fmt.Errorf("an Ed25519 key of %d bits, want %d", n, 8*ed25519.PublicKeySize)
	}
	key := ed25519.PublicKey(bytes.Clone(spki.PublicKey.Bytes))
	for _, prefix := range [][]byte{spkiPrefix, spkiNullPrefix} {
		if len(der) == len(prefix)+len(key) && bytes.HasPrefix(der, prefix) && bytes.Equal(der[len(prefix):], key) {
			return key, nil
		}
	}
	return nil, errors.New("not an encoding of an Ed25519 key that DER allows: algorithm parameters other than none or NULL, or extra fields")
}

// KeyID returns the keyid that in-toto gives key, which rebuilderd writes
// next to each signature: the hex SHA-256 of the canonical JSON of
// securesystemslib's key dictionary
//
//	{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}
//
// (in-toto-rs, which rebuilderd uses, keeps the keyid_hash_algorithms of
// in-toto-python). It reproduces the keyid of the instance's signature in
// the sample in testdata/rebuilderd.
func KeyID(key ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte(`{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":"`))
	h.Write([]byte(hex.EncodeToString(key)))
	h.Write([]byte(`"},"scheme":"ed25519"}`))
	return hex.EncodeToString(h.Sum(nil))
}
