package attest

import (
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/dsse"
)

// ReadEnvelope parses a DSSE envelope given either bare, as Lantern and
// cosign v2 write it, or inside a Sigstore bundle v0.3, as cosign v3 and
// `lantern attest sign --bundle` write it. Both are parsed strictly; the
// bundle's key hint is dropped, since only the signature decides trust.
func ReadEnvelope(b []byte) (*dsse.Envelope, error) {
	// A bare envelope first: most evidence is one, and a bundle is never
	// one (DSSE refuses its mediaType), so only what DSSE refuses is worth
	// sniffing for a bundle.
	env, err := dsse.Unmarshal(b)
	if err != nil && bundle.IsBundle(b) {
		env, _, err = bundle.Parse(b)
	}
	return env, err
}
