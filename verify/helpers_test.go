package verify_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/rebuilderd"
	"github.com/lanternfarm/lantern/verify"
)

// The rebuilderd sample in the top-level testdata: see its README.
const (
	samplePkg     = "filesystem-2025.10.12-1-any.pkg.tar.zst"
	sampleLink    = "filesystem-2025.10.12-1-any.in-toto.link"
	sampleInvalid = "filesystem-2025.10.12-1-any.INVALID.in-toto.link"
	sampleKey     = "reproducible-archlinux.pub"
	sampleKeyID   = "1ae6d32cb5bb8a98312106de28e50af7e09a9b294d51df459537908ac1288b8f"
)

func readSample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "rebuilderd", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// now is the time every decision in these tests is made at; rebuilds
// finished five days before it.
var (
	now      = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	finished = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

// ecKey is an ECDSA signer (a Lantern builder or an author) and its public
// key as a policy holds it.
type ecKey struct {
	priv *keys.Private
	key  verify.Key
}

func newECKey(tb testing.TB, name string) ecKey {
	tb.Helper()
	priv, err := keys.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := verify.ParseKey(priv.Public().MarshalPEM(), name)
	if err != nil {
		tb.Fatalf("ParseKey(%s) = %v", name, err)
	}
	if k.ID != priv.ID().String() {
		tb.Fatalf("ParseKey(%s).ID = %s, want %s", name, k.ID, priv.ID())
	}
	return ecKey{priv, k}
}

func (k ecKey) id() lantern.Digest { return k.priv.ID() }

// edKey is an Ed25519 signer of in-toto links, as a rebuilderd instance or
// worker is, and its public key as a policy holds it.
type edKey struct {
	priv ed25519.PrivateKey
	key  verify.Key
}

func newEdKey(tb testing.TB, name string) edKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := verify.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), name)
	if err != nil {
		tb.Fatalf("ParseKey(%s) = %v", name, err)
	}
	return edKey{priv, k}
}

// piece signs c with k as an envelope and returns it as a piece from origin.
func piece(tb testing.TB, origin string, k *keys.Private, c lantern.Claim) verify.Piece {
	tb.Helper()
	env, err := attest.Sign(c, k)
	if err != nil {
		tb.Fatalf("Sign(%s) = %v", c.Kind(), err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return verify.Piece{Origin: origin, Raw: b}
}

// src is a source of name@v1.0.0; tag makes other sources of it.
func src(name, tag string) lantern.Source {
	return lantern.Source{Name: name, Version: "v1.0.0", Digest: lantern.DigestOf([]byte(name + " source " + tag))}
}

// out is the digest of an output made of s.
func out(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }

func rebuild(by lantern.Digest, s lantern.Source, label string, output lantern.Digest) *lantern.Rebuild {
	return &lantern.Rebuild{
		Source:   s,
		Label:    label,
		Output:   output,
		Recipe:   lantern.Recipe{BuildType: "https://lantern.example/recipes/go/v1"},
		Builder:  by,
		Started:  finished.Add(-time.Minute),
		Finished: finished,
	}
}

func failure(by lantern.Digest, s lantern.Source) *lantern.RebuildFailure {
	return &lantern.RebuildFailure{
		Source:   s,
		Recipe:   lantern.Recipe{BuildType: "https://lantern.example/recipes/go/v1"},
		Builder:  by,
		Stage:    "build",
		Reason:   "go build: exit status 1",
		Finished: finished,
	}
}

func claim(s lantern.Source) *lantern.SourceClaim {
	return &lantern.SourceClaim{Source: s, Recipe: "go", Time: finished.Add(-time.Hour)}
}

func yank(s lantern.Source) *lantern.Yank {
	return &lantern.Yank{Source: s, Reason: "the tag was moved", Time: finished.Add(time.Hour)}
}

func revokeBuilder(k lantern.Digest) *lantern.Trust {
	return &lantern.Trust{Key: k, Relation: lantern.RelationTrustedBuilder, Revoked: true, Time: finished.Add(time.Hour)}
}

func revokeAuthor(k lantern.Digest, name string) *lantern.Trust {
	return &lantern.Trust{Key: k, Relation: lantern.RelationAuthor, Name: name, Revoked: true, Time: finished.Add(time.Hour)}
}

func trustBuilder(k lantern.Digest) *lantern.Trust {
	return &lantern.Trust{Key: k, Relation: lantern.RelationTrustedBuilder, Time: finished.Add(time.Hour)}
}

// link makes an in-toto v0.9 link as rebuilderd publishes it, with the
// given products, signed by each of signers over the canonical JSON of its
// "signed" object. The object is written canonically to begin with (keys
// sorted, no spaces, no escapes), and link checks that rebuilderd.Read
// reads it and that every signer's key verifies it.
func link(tb testing.TB, origin string, products map[string]lantern.Digest, signers ...edKey) verify.Piece {
	tb.Helper()
	prods := map[string]map[string]string{}
	for n, d := range products {
		prods[n] = map[string]string{"sha256": d.Hex()}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range products {
			if !yield(n) {
				return
			}
		}
	})
	signed := map[string]any{
		"_type":       "link",
		"byproducts":  map[string]any{},
		"command":     []string{},
		"environment": nil,
		"materials":   prods,
		"name":        "rebuild " + names[0],
		"products":    prods,
	}
	canonical, err := json.Marshal(signed) // sorted keys, no spaces
	if err != nil {
		tb.Fatal(err)
	}
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	var sigs []sig
	for _, s := range signers {
		pub := s.priv.Public().(ed25519.PublicKey)
		sigs = append(sigs, sig{rebuilderd.KeyID(pub), hex.EncodeToString(ed25519.Sign(s.priv, canonical))})
	}
	b, err := json.Marshal(struct {
		Signatures []sig           `json:"signatures"`
		Signed     json.RawMessage `json:"signed"`
	}{sigs, canonical})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := rebuilderd.Read(b)
	if err != nil {
		tb.Fatalf("rebuilderd.Read(the test's link) = %v", err)
	}
	for _, s := range signers {
		if _, err := l.Verify(s.priv.Public().(ed25519.PublicKey)); err != nil {
			tb.Fatalf("the test's link does not verify: %v", err)
		}
	}
	return verify.Piece{Origin: origin, Raw: b}
}

// reasons lists the reasons of a decision's items, in order.
func reasons(d *verify.Decision) []verify.Reason {
	var rs []verify.Reason
	for _, it := range d.Evidence {
		rs = append(rs, it.Reason)
	}
	return rs
}
