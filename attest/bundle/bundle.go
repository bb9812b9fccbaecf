// Package bundle reads and writes Sigstore bundles v0.3
// (application/vnd.dev.sigstore.bundle.v0.3+json) as cosign v3 writes them
// with --bundle and a key: a DSSE envelope inside, a public-key hint as the
// verification material, and (with --tlog-upload=false) no transparency-log
// entries.
//
// Lantern trusts keys, never what a bundle says about itself. The hint is
// returned so that a reader can find a likely key quickly; it never decides
// trust — only the envelope's signature, checked with a key the reader chose,
// does. Transparency-log entries and RFC 3161 timestamps, which cosign adds
// when it uploads to a log or asks a timestamp authority, are checked for
// their JSON syntax and otherwise ignored: ignoring them never lets through
// a signature that would not verify without them.
//
// Parsing is strict, as for bare envelopes (package dsse): a size bound, the
// field names cosign writes and no others, no field twice, exactly one
// content, which must be a DSSE envelope.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

// MediaType is the media type of the bundles New writes and Parse reads.
const MediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// mediaTypeAlt is the other spelling of v0.3 that the bundle specification
// allows (and sigstore-go reads).
const mediaTypeAlt = "application/vnd.dev.sigstore.bundle+json;version=0.3"

// mediaTypePrefix begins the media type of every Sigstore bundle version.
const mediaTypePrefix = "application/vnd.dev.sigstore.bundle"

// MaxSize bounds the bundles Parse reads: an envelope of dsse.MaxEnvelopeSize
// and room for the verification material (transparency-log entries,
// timestamps) around it.
const MaxSize = dsse.MaxEnvelopeSize + 256<<10

// The checks of Parse; its errors wrap one of these (or one of package dsse's
// for the envelope inside).
var (
	ErrTooLarge  = errors.New("bundle too large")
	ErrMalformed = errors.New("malformed bundle")
	ErrMediaType = errors.New("wrong bundle mediaType")
	// ErrNotDSSE is a bundle whose content is not a DSSE envelope, such as
	// cosign sign-blob's messageSignature: it signs a digest, not a statement.
	ErrNotDSSE = errors.New("bundle content is not a DSSE envelope")
	// ErrNoPublicKey is a bundle verified by something other than a key,
	// such as a Fulcio certificate: Lantern verifies with keys it trusts.
	ErrNoPublicKey = errors.New("bundle is not signed with a public key")
)

// Hint is a bundle's public-key hint: cosign writes the standard base64 of
// the SHA-256 of the key's PKIX DER, the bytes of Lantern's key id. It says
// which key probably signed; it proves nothing.
type Hint string

// KeyID returns the key id the hint spells in cosign's form, and false when
// the hint is empty or in another form.
func (h Hint) KeyID() (lantern.Digest, bool) {
	if len(h) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return lantern.Digest{}, false
	}
	// 44 characters without padding decode to 33 bytes: room for them, to refuse.
	var buf [sha256.Size + 1]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(h))
	if err != nil || n != sha256.Size {
		return lantern.Digest{}, false
	}
	return lantern.DigestFromSum([sha256.Size]byte(buf[:sha256.Size])), true
}

// KeyHint returns the hint cosign writes for the key with id keyID.
func KeyHint(keyID lantern.Digest) string {
	if keyID.IsZero() {
		return ""
	}
	sum := keyID.Sum()
	return base64.StdEncoding.EncodeToString(sum[:])
}

// IsBundle reports whether b looks like a Sigstore bundle: a JSON object with
// a top-level "mediaType" string of a Sigstore bundle (any version). It
// checks no more; Parse does.
func IsBundle(b []byte) bool {
	if len(b) > MaxSize {
		b = b[:MaxSize] // a sniff: an oversized bundle is still one, for Parse to refuse
	}
	d := strictjson.NewDecoder(b)
	found := false
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		if string(name) != "mediaType" {
			_, err := d.Raw()
			return err
		}
		s, err := d.StringBytes()
		if err != nil {
			return err
		}
		found = bytes.HasPrefix(s, []byte(mediaTypePrefix))
		return errFound
	})
	return found && errors.Is(err, errFound)
}

// errFound stops IsBundle's walk at the mediaType.
var errFound = errors.New("found")

// Parse reads a bundle strictly and returns the DSSE envelope inside and the
// public-key hint (possibly empty). It checks no signature: verify the
// envelope with a key you trust, whatever the hint says.
func Parse(b []byte) (*dsse.Envelope, Hint, error) {
	if len(b) > MaxSize {
		return nil, "", fmt.Errorf("bundle: %w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxSize)
	}
	var (
		mediaType             string
		haveMediaType, haveVM bool
		envRaw                []byte
		contents              []string
		hint                  Hint
		havePublicKey         bool
		otherMaterial         string
		materials             int
	)
	d := strictjson.NewDecoder(b)
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		switch string(name) {
		case "mediaType":
			haveMediaType = true
			var err error
			mediaType, err = d.String()
			return err
		case "verificationMaterial":
			haveVM = true
			return d.Object(func(d *strictjson.Decoder, name []byte) error {
				switch string(name) {
				case "publicKey":
					materials++
					havePublicKey = true
					return d.Object(func(d *strictjson.Decoder, name []byte) error {
						if string(name) != "hint" {
							return d.UnknownField(name)
						}
						s, err := d.String()
						hint = Hint(s)
						return err
					})
				case "certificate", "x509CertificateChain":
					materials++
					otherMaterial = string(name)
					_, err := d.Raw()
					return err
				case "tlogEntries":
					// Not trusted, not needed: see the package doc.
					return d.Array(func(d *strictjson.Decoder) error {
						return d.Object(func(d *strictjson.Decoder, _ []byte) error {
							_, err := d.Raw()
							return err
						})
					})
				case "timestampVerificationData":
					return d.Object(func(d *strictjson.Decoder, name []byte) error {
						if string(name) != "rfc3161Timestamps" {
							return d.UnknownField(name)
						}
						_, err := d.Raw()
						return err
					})
				}
				return d.UnknownField(name)
			})
		case "dsseEnvelope":
			contents = append(contents, string(name))
			var err error
			envRaw, err = d.Raw()
			return err
		case "messageSignature":
			contents = append(contents, string(name))
			_, err := d.Raw()
			return err
		}
		return d.UnknownField(name)
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		var je *strictjson.Error
		if errors.As(err, &je) {
			return nil, "", fmt.Errorf("bundle: %w: %w", ErrMalformed, err)
		}
		return nil, "", fmt.Errorf("bundle: %w", err)
	}
	switch {
	case !haveMediaType:
		return nil, "", fmt.Errorf("bundle: %w: no mediaType", ErrMalformed)
	case mediaType != MediaType && mediaType != mediaTypeAlt:
		return nil, "", fmt.Errorf("bundle: %w: %q, want %q (cosign v3 writes it with --bundle)", ErrMediaType, truncate(mediaType), MediaType)
	case !haveVM:
		return nil, "", fmt.Errorf("bundle: %w: no verificationMaterial", ErrMalformed)
	case materials > 1:
		return nil, "", fmt.Errorf("bundle: %w: verificationMaterial has %d of publicKey, certificate and x509CertificateChain; want one", ErrMalformed, materials)
	case otherMaterial != "":
		return nil, "", fmt.Errorf("bundle: %w: its verificationMaterial is a %s; Lantern verifies with keys, so sign with 'cosign attest-blob --key'", ErrNoPublicKey, otherMaterial)
	case !havePublicKey:
		return nil, "", fmt.Errorf("bundle: %w: verificationMaterial has no publicKey", ErrNoPublicKey)
	case len(contents) == 0:
		return nil, "", fmt.Errorf("bundle: %w: no dsseEnvelope", ErrMalformed)
	case len(contents) > 1:
		return nil, "", fmt.Errorf("bundle: %w: both %s and %s; want one dsseEnvelope", ErrMalformed, contents[0], contents[1])
	case contents[0] != "dsseEnvelope":
		return nil, "", fmt.Errorf("bundle: %w: a %s (cosign sign-blob signs a digest); want an attestation, as 'cosign attest-blob' or 'lantern attest sign --bundle' writes it", ErrNotDSSE, contents[0])
	}
	env, err := dsse.Unmarshal(envRaw)
	if err != nil {
		return nil, "", fmt.Errorf("bundle: dsseEnvelope: %w", err)
	}
	return env, hint, nil
}

// New returns the bundle of env with the public-key hint written as given
// (use KeyHint for cosign's form; empty leaves it out), as cosign v3's
// attest-blob writes it: the form `cosign verify-blob-attestation --bundle`
// reads.
func New(env *dsse.Envelope, hint string) ([]byte, error) {
	if env == nil {
		return nil, errors.New("bundle: no envelope")
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("bundle: %w", dsse.ErrNoSignature)
	}
	// The field names and their order are protojson's, as cosign writes them:
	// empty fields are left out.
	type wireSig struct {
		Sig   string `json:"sig"`
		KeyID string `json:"keyid,omitempty"`
	}
	type wireEnv struct {
		Payload     string    `json:"payload"`
		PayloadType string    `json:"payloadType"`
		Signatures  []wireSig `json:"signatures"`
	}
	type wirePublicKey struct {
		Hint string `json:"hint,omitempty"`
	}
	type wireVM struct {
		PublicKey wirePublicKey `json:"publicKey"`
	}
	w := struct {
		MediaType            string  `json:"mediaType"`
		VerificationMaterial wireVM  `json:"verificationMaterial"`
		DSSEEnvelope         wireEnv `json:"dsseEnvelope"`
	}{
		MediaType:            MediaType,
		VerificationMaterial: wireVM{PublicKey: wirePublicKey{Hint: hint}},
		DSSEEnvelope: wireEnv{
			Payload:     base64.StdEncoding.EncodeToString(env.Payload),
			PayloadType: env.PayloadType,
		},
	}
	for _, s := range env.Signatures {
		w.DSSEEnvelope.Signatures = append(w.DSSEEnvelope.Signatures, wireSig{Sig: base64.StdEncoding.EncodeToString(s.Sig), KeyID: s.KeyID})
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("bundle: %w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxSize)
	}
	return b, nil
}

func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "..."
}
