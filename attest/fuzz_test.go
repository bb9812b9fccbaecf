package attest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
)

// claimOpts compares claims as JSON sees them: an empty map or slice is the
// same as a missing one, since omitempty cannot tell them apart. Digests and
// times compare with their Equal methods, cmp's default.
var claimOpts = []cmp.Option{cmpopts.EquateEmpty()}

// everyKindOfClaim returns a valid claim of every kind; see claimtest.
func everyKindOfClaim(builder lantern.Digest) []lantern.Claim { return claimtest.Claims(builder) }

// corpusKey returns the private key that signed the bad inputs in
// ../testdata/bad. Decrypting it costs one scrypt, so call it once per test.
func corpusKey(tb testing.TB) *keys.Private {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(badDir, "key.key"))
	if err != nil {
		tb.Fatal(err)
	}
	k, err := keys.ParsePrivate(b, nil)
	if err != nil {
		tb.Fatalf("ParsePrivate(%s) = %v", filepath.Join(badDir, "key.key"), err)
	}
	return k
}

// corpusEnvelopes returns the contents of the envelope files of the corpus
// of bad inputs.
func corpusEnvelopes(tb testing.TB) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(badDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkRoundTrip checks that a claim that was read re-encodes and reads
// back the same: what Lantern accepts, it can also sign and read again.
func checkRoundTrip(t *testing.T, c lantern.Claim) {
	t.Helper()
	st, err := attest.NewStatement(c)
	if err != nil {
		t.Fatalf("NewStatement(%#v) of a claim that was read = %v", c, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal statement: %v", err)
	}
	st2, err := attest.ParseStatement(b)
	if err != nil {
		t.Fatalf("ParseStatement(%s) of a re-encoded claim = %v", b, err)
	}
	c2, err := st2.Claim()
	if err != nil {
		t.Fatalf("Claim() of a re-encoded claim %s = %v", b, err)
	}
	if diff := cmp.Diff(c, c2, claimOpts...); diff != "" {
		t.Fatalf("claim changed in a round trip (-read +re-read):\n%s", diff)
	}
}

func FuzzParseStatement(f *testing.F) {
	for _, c := range everyKindOfClaim(lantern.DigestOf([]byte("builder key"))) {
		st, err := attest.NewStatement(c)
		if err != nil {
			f.Fatalf("NewStatement(%s) = %v", c.Kind(), err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// As a Statement/v0.1, which cosign's attest-blob --predicate writes.
		st.Type = attest.StatementTypeV01
		if b, err = json.Marshal(st); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// The statements inside the corpus of bad envelopes.
	for _, b := range corpusEnvelopes(f) {
		if env, err := dsse.Unmarshal(b); err == nil {
			f.Add(env.Payload)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := attest.ParseStatement(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("ParseStatement accepted invalid JSON %q", b)
		}
		c, err := st.Claim()
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Claim() returned a %s claim that does not validate: %v", c.Kind(), err)
		}
		checkRoundTrip(t, c)
	})
}

func FuzzVerify(f *testing.F) {
	priv := corpusKey(f)
	pub := priv.Public()
	for _, c := range everyKindOfClaim(pub.ID()) {
		env, err := attest.Sign(c, priv)
		if err != nil {
			f.Fatalf("Sign(%s) = %v", c.Kind(), err)
		}
		b, err := json.Marshal(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range corpusEnvelopes(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := dsse.Unmarshal(b)
		if err != nil {
			return
		}
		v, err := attest.Verify(env, pub)
		if err != nil {
			return
		}
		if v.Signer != pub.ID() {
			t.Fatalf("Verify().Signer = %s, want the key id %s", v.Signer, pub.ID())
		}
		if err := v.Claim.Validate(); err != nil {
			t.Fatalf("Verify() returned a %s claim that does not validate: %v", v.Claim.Kind(), err)
		}
		switch c := v.Claim.(type) {
		case *lantern.Rebuild:
			if c.Builder != pub.ID() {
				t.Fatalf("Verify() accepted a rebuild by builder %s signed by %s", c.Builder, pub.ID())
			}
		case *lantern.RebuildFailure:
			if c.Builder != pub.ID() {
				t.Fatalf("Verify() accepted a failed rebuild by builder %s signed by %s", c.Builder, pub.ID())
			}
		}
		checkRoundTrip(t, v.Claim)
	})
}
