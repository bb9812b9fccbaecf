package dsse_test

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/attest/dsse"
)

// TestPAE checks the encoding against the example of the DSSE protocol.
func TestPAE(t *testing.T) {
	got := string(dsse.PAE("http://example.com/HelloWorld", []byte("hello world")))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got != want {
		t.Errorf("PAE() = %q, want %q", got, want)
	}
}

type xorSigner struct{ key byte }

func (s xorSigner) Sign(pae []byte) ([]byte, error) {
	sum := byte(0)
	for _, b := range pae {
		sum ^= b
	}
	return []byte{sum ^ s.key}, nil
}

func (s xorSigner) Verify(pae, sig []byte) error {
	want, _ := s.Sign(pae)
	if len(sig) != 1 || sig[0] != want[0] {
		return errors.New("mismatch")
	}
	return nil
}

// TestVerifyChecks exercises each check of Verify with a toy signer; the real
// ECDSA keys are tested in package attest.
func TestVerifyChecks(t *testing.T) {
	s := xorSigner{key: 7}
	env, err := dsse.Sign("text/plain", []byte("hi"), s)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := env.Verify("text/plain", s); err != nil || string(p) != "hi" {
		t.Fatalf("Verify() = %q, %v", p, err)
	}
	tests := []struct {
		name   string
		mutate func(e *dsse.Envelope)
		want   error
	}{
		{"payload type", func(e *dsse.Envelope) { e.PayloadType = "text/html" }, dsse.ErrPayloadType},
		{"no signature", func(e *dsse.Envelope) { e.Signatures = nil }, dsse.ErrNoSignature},
		{"two signatures", func(e *dsse.Envelope) { e.Signatures = append(e.Signatures, e.Signatures[0]) }, dsse.ErrSignatureCount},
		{"payload", func(e *dsse.Envelope) { e.Payload = []byte("ho") }, dsse.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *env
			tt.mutate(&e)
			if _, err := e.Verify("text/plain", s); !errors.Is(err, tt.want) {
				t.Errorf("Verify() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUnmarshalBase64Forms(t *testing.T) {
	// "hi?" encodes differently in standard and URL-safe base64.
	for _, payload := range []string{"aGk/", "aGk_"} {
		e, err := dsse.Unmarshal([]byte(`{"payloadType":"t","payload":"` + payload + `","signatures":[{"keyid":"","sig":"AA=="}]}`))
		if err != nil || string(e.Payload) != "hi?" {
			t.Errorf("Unmarshal(payload %q) = %v, %v; want hi?", payload, e, err)
		}
	}
	// Non-canonical: the last character carries stray bits.
	if _, err := dsse.Unmarshal([]byte(`{"payloadType":"t","payload":"aGl=","signatures":[]}`)); !errors.Is(err, dsse.ErrBase64) {
		t.Errorf("Unmarshal(non-canonical base64) = %v, want %v", err, dsse.ErrBase64)
	}
}

func TestPAESHA256(t *testing.T) {
	for _, payload := range []string{"", "hello world", strings.Repeat("x", 100000)} {
		want := sha256.Sum256(dsse.PAE("application/vnd.in-toto+json", []byte(payload)))
		if got := dsse.PAESHA256("application/vnd.in-toto+json", []byte(payload)); got != want {
			t.Errorf("PAESHA256(%d bytes) = %x, want %x", len(payload), got, want)
		}
	}
}
