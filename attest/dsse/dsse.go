// Package dsse implements the Dead Simple Signing Envelope
// (https://github.com/secure-systems-lab/dsse): pre-authentication encoding,
// signing, verification, and strict parsing of envelopes from untrusted
// sources. Every error names the check that failed, and the checks that
// callers branch on are sentinels.
//
// Lantern's envelopes carry one signature with an empty keyid: cosign ignores
// the keyid and sigstore-go rejects one that does not match its own idea of
// the key, so the signer is named inside the payload instead.
package dsse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/lanternfarm/lantern/internal/strictjson"
)

// MaxEnvelopeSize bounds the bytes Parse reads. Lantern's largest envelopes
// (a source claim with many artefacts) are a few kilobytes.
const MaxEnvelopeSize = 4 << 20

// The checks that Parse and Verify make; errors wrap one of these.
var (
	ErrTooLarge       = errors.New("envelope too large")
	ErrMalformed      = errors.New("malformed envelope")
	ErrPayloadType    = errors.New("wrong payloadType")
	ErrBase64         = errors.New("bad base64")
	ErrNoSignature    = errors.New("no signature")
	ErrSignatureCount = errors.New("more than one signature")
	ErrSignature      = errors.New("signature does not verify")
)

// Signer signs the pre-authentication encoding of an envelope.
type Signer interface {
	Sign(pae []byte) ([]byte, error)
}

// Verifier checks a signature over the pre-authentication encoding.
type Verifier interface {
	Verify(pae, sig []byte) error
}

// Envelope is a DSSE envelope. Payload holds the decoded bytes; JSON carries
// them in standard base64.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an Envelope.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// PAE returns the pre-authentication encoding that is signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len("DSSEv1 ") + 2*20 + len(payloadType) + len(payload) + 3)
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Sign makes an envelope of payload with one signature by s.
func Sign(payloadType string, payload []byte, s Signer) (*Envelope, error) {
	sig, err := s.Sign(PAE(payloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("dsse: sign: %w", err)
	}
	return &Envelope{
		PayloadType: payloadType,
		Payload:     payload,
		Signatures:  []Signature{{Sig: sig}},
	}, nil
}

// Verify checks that e has the wanted payload type and exactly one signature,
// and that v verifies it. It returns the payload.
func (e *Envelope) Verify(payloadType string, v Verifier) ([]byte, error) {
	if e.PayloadType != payloadType {
		return nil, fmt.Errorf("dsse: %w: %q, want %q", ErrPayloadType, truncate(e.PayloadType), payloadType)
	}
	switch len(e.Signatures) {
	case 0:
		return nil, fmt.Errorf("dsse: %w", ErrNoSignature)
	case 1:
	default:
		return nil, fmt.Errorf("dsse: %w: %d, want 1", ErrSignatureCount, len(e.Signatures))
	}
	var err error
	if sv, ok := v.(SHA256Verifier); ok {
		err = sv.VerifySHA256(PAESHA256(e.PayloadType, e.Payload), e.Signatures[0].Sig)
	} else {
		err = v.Verify(PAE(e.PayloadType, e.Payload), e.Signatures[0].Sig)
	}
	if err != nil {
		return nil, fmt.Errorf("dsse: %w: %w", ErrSignature, err)
	}
	return e.Payload, nil
}

// SHA256Verifier is a Verifier that can check a signature given the SHA-256
// of the pre-authentication encoding, as ECDSA P-256 signatures are made.
// Verify uses it where it can: hashing the encoding piece by piece spares
// copying the payload into it.
type SHA256Verifier interface {
	Verifier
	VerifySHA256(sum [sha256.Size]byte, sig []byte) error
}

// PAESHA256 returns the SHA-256 of PAE(payloadType, payload).
func PAESHA256(payloadType string, payload []byte) [sha256.Size]byte {
	var head [64]byte
	b := append(head[:0], "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(payloadType))
	b = append(head[:0], ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	h.Write(b)
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// MarshalJSON encodes the envelope in the standard form, with an empty keyid
// present, as cosign writes it.
func (e *Envelope) MarshalJSON() ([]byte, error) {
	type wire struct {
		PayloadType string    `json:"payloadType"`
		Payload     string    `json:"payload"`
		Signatures  []wireSig `json:"signatures"`
	}
	w := wire{PayloadType: e.PayloadType, Payload: base64.StdEncoding.EncodeToString(e.Payload)}
	for _, s := range e.Signatures {
		w.Signatures = append(w.Signatures, wireSig{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	if w.Signatures == nil {
		w.Signatures = []wireSig{}
	}
	return json.Marshal(w)
}

type wireSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// UnmarshalJSON parses strictly; see Unmarshal.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	p, err := Unmarshal(b)
	if err != nil {
		return err
	}
	*e = *p
	return nil
}

// Parse reads at most MaxEnvelopeSize bytes from r and parses them strictly.
func Parse(r io.Reader) (*Envelope, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxEnvelopeSize+1))
	if err != nil {
		return nil, fmt.Errorf("dsse: read: %w", err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("dsse: %w: more than %d bytes", ErrTooLarge, MaxEnvelopeSize)
	}
	return Unmarshal(b)
}

// Unmarshal parses an envelope strictly: one JSON object with exactly the
// fields payloadType, payload and signatures (each signature with keyid and
// sig, keyid optional), no field twice, payload and signatures in base64
// (standard or URL-safe, padded or not, as the DSSE spec allows).
func Unmarshal(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("dsse: %w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	var (
		e                     Envelope
		havePayload, haveType bool
		haveSignatures        bool
	)
	d := strictjson.NewDecoder(b)
	err := d.Object(func(d *strictjson.Decoder, name []byte) error {
		switch string(name) {
		case "payloadType":
			haveType = true
			var err error
			e.PayloadType, err = d.String()
			return err
		case "payload":
			havePayload = true
			raw, err := d.PlainString() // base64 decoding checks every byte
			if err != nil {
				return err
			}
			if e.Payload, err = decodeBase64(raw); err != nil {
				return fmt.Errorf("payload: %w", err)
			}
			return nil
		case "signatures":
			haveSignatures = true
			return d.Array(func(d *strictjson.Decoder) error {
				i := len(e.Signatures)
				var sig Signature
				haveSig := false
				err := d.Object(func(d *strictjson.Decoder, name []byte) error {
					switch string(name) {
					case "keyid":
						var err error
						sig.KeyID, err = d.String()
						return err
					case "sig":
						haveSig = true
						raw, err := d.PlainString()
						if err != nil {
							return err
						}
						if sig.Sig, err = decodeBase64(raw); err != nil {
							return fmt.Errorf("signatures[%d].sig: %w", i, err)
						}
						if len(sig.Sig) == 0 {
							return fmt.Errorf("signatures[%d].sig: %w: empty", i, ErrMalformed)
						}
						return nil
					}
					return d.UnknownField(name)
				})
				if err != nil {
					return err
				}
				if !haveSig {
					return fmt.Errorf("signatures[%d]: %w: no sig", i, ErrMalformed)
				}
				e.Signatures = append(e.Signatures, sig)
				return nil
			})
		}
		return d.UnknownField(name)
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		var je *strictjson.Error
		if errors.As(err, &je) {
			return nil, fmt.Errorf("dsse: %w: %w", ErrMalformed, err)
		}
		return nil, fmt.Errorf("dsse: %w", err)
	}
	switch {
	case !haveType:
		return nil, fmt.Errorf("dsse: %w: no payloadType", ErrMalformed)
	case !havePayload:
		return nil, fmt.Errorf("dsse: %w: no payload", ErrMalformed)
	case !haveSignatures:
		return nil, fmt.Errorf("dsse: %w: no signatures", ErrMalformed)
	}
	return &e, nil
}

// strictEncodings are the base64 alphabets DSSE allows, in strict mode: a
// non-canonical encoding (stray bits in the last character) is refused, so
// that one string of text decodes to one payload. Padding is chosen by the
// length of the text.
var strictEncodings = []*base64.Encoding{base64.StdEncoding.Strict(), base64.URLEncoding.Strict()}

func decodeBase64(s []byte) ([]byte, error) {
	// encoding/base64 skips CR and LF even in strict mode; in a JSON string
	// they are not allowed at all.
	if bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
		return nil, fmt.Errorf("%w: a line break inside the string", ErrBase64)
	}
	var first error
	for _, enc := range strictEncodings {
		if len(s)%4 != 0 {
			enc = enc.WithPadding(base64.NoPadding)
		}
		out := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(out, s)
		if err == nil {
			return out[:n], nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrBase64, first)
}

func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "..."
}
