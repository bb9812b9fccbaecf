// Package rebuilderd reads the evidence that rebuilderd instances
// (reproduce.debian.net, reproducible.archlinux.org) publish for each package
// they rebuilt: an in-toto v0.9 link whose products are the rebuilt
// artefacts, signed with Ed25519 over the canonical JSON of its "signed"
// object, usually twice (by the worker that rebuilt it and by the instance's
// long-term key).
//
// Read parses a link strictly and computes the canonical JSON of "signed"
// from the parsed document, never trusting the file's own layout; Verify
// checks the signatures by the keys the caller trusts, which ParsePublicKey
// reads from the PEM files rebuilderd publishes. A link that verifies by a
// trusted key is that rebuilder's statement that it rebuilt the products
// with the digests the link lists. The package does no I/O.
package rebuilderd

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

// MaxLinkSize bounds the bytes Read accepts. rebuilderd's links list one
// package and are about a kilobyte.
const MaxLinkSize = 1 << 20

// maxSignatures bounds the signatures of a link; rebuilderd makes two.
const maxSignatures = 16

// Errors that callers branch on.
var (
	ErrTooLarge  = errors.New("link too large")
	ErrMalformed = errors.New("malformed link")
	// ErrSignature reports a signature by a trusted key that does not verify.
	ErrSignature = errors.New("signature does not verify")
	// ErrNotTrusted reports a link with no signature by any trusted key.
	ErrNotTrusted = errors.New("not signed by a trusted key")
)

// Link is an in-toto v0.9 link as rebuilderd publishes it.
type Link struct {
	name      string
	products  map[string]lantern.Digest
	canonical []byte // the canonical JSON of "signed": what the signatures sign
	sigs      []signature
}

type signature struct {
	keyID string
	sig   []byte
}

// Read parses a link metablock, {"signed": {...}, "signatures": [...]}.
// "signed" must be a link (_type "link") with all of in-toto v0.9's fields
// and no others, each product must have a sha256, and there must be at least
// one signature, with no two under one keyid. Read checks the form only;
// Verify checks the signatures.
func Read(b []byte) (*Link, error) {
	if len(b) > MaxLinkSize {
		return nil, fmt.Errorf("read link: %w: %d bytes, at most %d", ErrTooLarge, len(b), MaxLinkSize)
	}
	var (
		l         Link
		signedRaw []byte
		haveSigs  bool
	)
	d := strictjson.NewDecoder(b)
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		switch string(name) {
		case "signed":
			var err error
			signedRaw, err = d.Value(l.readSigned)
			return err
		case "signatures":
			haveSigs = true
			return d.Array(l.readSignature)
		default:
			return d.UnknownField(name)
		}
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return nil, fmt.Errorf("read link: %w: %w", ErrMalformed, err)
	}
	switch {
	case signedRaw == nil:
		return nil, fmt.Errorf("read link: %w: no \"signed\"", ErrMalformed)
	case !haveSigs || len(l.sigs) == 0:
		return nil, fmt.Errorf("read link %q: %w: no signatures", l.name, ErrMalformed)
	}
	if l.canonical, err = appendCanonical(nil, signedRaw); err != nil {
		return nil, fmt.Errorf("read link %q: %w: %w", l.name, ErrMalformed, err)
	}
	return &l, nil
}

// readSigned reads the "signed" object of a link.
func (l *Link) readSigned(d *strictjson.Decoder) error {
	const want = 7
	seen := 0
	var typ string
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		seen++
		var err error
		switch string(name) {
		case "_type":
			typ, err = d.String()
		case "name":
			l.name, err = d.String()
		case "materials":
			_, err = readArtifacts(d, false)
		case "products":
			l.products, err = readArtifacts(d, true)
		case "byproducts":
			err = d.Object(anyValue)
		case "command":
			err = d.Array(func(d *strictjson.Decoder) error {
				_, err := d.StringBytes()
				return err
			})
		case "environment":
			if !d.Null() {
				err = d.Object(anyValue)
			}
		default:
			seen--
			return d.UnknownField(name)
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case typ != "link":
		return fmt.Errorf("_type %q, want \"link\"", truncate(typ))
	case seen != want:
		return fmt.Errorf("\"signed\" has %d of the fields of an in-toto v0.9 link (_type, name, materials, products, byproducts, command, environment)", seen)
	}
	return nil
}

// anyValue reads the value of an object member whose contents the link
// leaves open (byproducts, environment); canonical encoding checks it later.
func anyValue(d *strictjson.Decoder, _ []byte) error {
	_, err := d.Raw()
	return err
}

// readArtifacts reads materials or products: artefact names to digest sets,
// {"sha256": hex, ...}, and returns their sha256s. Products need one: it is
// the digest the link vouches for.
func readArtifacts(d *strictjson.Decoder, needSHA256 bool) (map[string]lantern.Digest, error) {
	out := map[string]lantern.Digest{}
	var missing []string
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		set, err := d.StringMap()
		if err != nil {
			return err
		}
		h, ok := set["sha256"]
		if !ok {
			if !needSHA256 {
				return nil
			}
			missing = append(missing, string(name))
			return nil
		}
		dg, err := lantern.DigestFromHex(h)
		if err != nil {
			return fmt.Errorf("artefact %q: %w", truncate(string(name)), err)
		}
		out[string(name)] = dg
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("artefact %q has no sha256", truncate(missing[0]))
	}
	return out, nil
}

// readSignature reads one element of "signatures": {"keyid": hex, "sig": hex}.
func (l *Link) readSignature(d *strictjson.Decoder) error {
	if len(l.sigs) == maxSignatures {
		return fmt.Errorf("more than %d signatures", maxSignatures)
	}
	var s signature
	var haveKeyID, haveSig bool
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		switch string(name) {
		case "keyid":
			haveKeyID = true
			// A keyid is a lower-case hex SHA-256 (see KeyID).
			b, err := d.PlainString()
			if err != nil {
				return err
			}
			if _, err := lantern.DigestFromHex(string(b)); err != nil {
				return fmt.Errorf("keyid: %w", err)
			}
			s.keyID = string(b)
			return nil
		case "sig":
			haveSig = true
			b, err := d.PlainString()
			if err != nil {
				return err
			}
			if len(b) != 2*ed25519.SignatureSize {
				return fmt.Errorf("sig: %d hex digits, want %d for an Ed25519 signature", len(b), 2*ed25519.SignatureSize)
			}
			s.sig, err = hex.DecodeString(string(b))
			if err != nil {
				return fmt.Errorf("sig: %w", err)
			}
			return nil
		default:
			return d.UnknownField(name)
		}
	})
	switch {
	case err != nil:
		return err
	case !haveKeyID || !haveSig:
		return errors.New("a signature needs both keyid and sig")
	}
	for _, o := range l.sigs {
		if o.keyID == s.keyID {
			return fmt.Errorf("two signatures by keyid %s", s.keyID)
		}
	}
	l.sigs = append(l.sigs, s)
	return nil
}

// Name returns the link's name; rebuilderd's is "rebuild " and the file name
// of the package. It is not a product name and proves nothing by itself.
func (l *Link) Name() string { return l.name }

// Products returns the sha256 of each product, by artefact name: the digests
// that a verified link vouches for.
func (l *Link) Products() map[string]lantern.Digest { return maps.Clone(l.products) }

// KeyIDs returns the keyids of the link's signatures, in its order. They are
// unauthenticated: a keyid only says which key to try.
func (l *Link) KeyIDs() []string {
	ids := make([]string, len(l.sigs))
	for i, s := range l.sigs {
		ids[i] = s.keyID
	}
	return ids
}

// Verify checks the link's signatures by keys, the keys the caller trusts.
// A signature belongs to a key when its keyid is the key's KeyID; signatures
// by other keys are ignored. Verify returns the keys whose signatures verify.
// It also returns an ErrSignature error if a signature by one of keys does
// not verify, even when another key's does: that is a forged or damaged
// link, which the caller should see. With no signature by any of keys, the
// error is ErrNotTrusted.
func (l *Link) Verify(keys ...ed25519.PublicKey) (verified []ed25519.PublicKey, err error) {
	var bad []string
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("verify link %q: a key of %d bytes, want %d", l.name, len(k), ed25519.PublicKeySize)
		}
		id := KeyID(k)
		if seen[id] {
			continue
		}
		seen[id] = true
		i := slices.IndexFunc(l.sigs, func(s signature) bool { return s.keyID == id })
		if i < 0 {
			continue
		}
		if ed25519.Verify(k, l.canonical, l.sigs[i].sig) {
			verified = append(verified, k)
		} else {
			bad = append(bad, id)
		}
	}
	switch {
	case len(bad) > 0:
		return verified, fmt.Errorf("verify link %q: %w: by key %s", l.name, ErrSignature, strings.Join(bad, ", "))
	case len(verified) == 0:
		return nil, fmt.Errorf("verify link %q: %w: signed by keys %s, none of the %d given", l.name, ErrNotTrusted, strings.Join(l.KeyIDs(), ", "), len(seen))
	}
	return verified, nil
}
