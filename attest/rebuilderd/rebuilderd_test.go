package rebuilderd_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/rebuilderd"
)

func sampleLinkAndKey(t *testing.T) (*rebuilderd.Link, ed25519.PublicKey) {
	t.Helper()
	l, err := rebuilderd.Read(readSample(t, sampleLink))
	if err != nil {
		t.Fatalf("Read(%s) = %v", sampleLink, err)
	}
	k, err := rebuilderd.ParsePublicKey(readSample(t, sampleKey))
	if err != nil {
		t.Fatalf("ParsePublicKey(%s) = %v", sampleKey, err)
	}
	return l, k
}

func TestSampleVerifies(t *testing.T) {
	l, k := sampleLinkAndKey(t)
	got, err := l.Verify(k)
	if err != nil {
		t.Fatalf("Verify(instance key) = %v", err)
	}
	if len(got) != 1 || !got[0].Equal(k) {
		t.Errorf("Verify(instance key) = %x, want [%x]", got, k)
	}
	if got, want := l.Name(), "rebuild "+samplePkg; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

func TestSampleProductIsThePackage(t *testing.T) {
	l, _ := sampleLinkAndKey(t)
	want := map[string]lantern.Digest{samplePkg: lantern.DigestOf(readSample(t, samplePkg))}
	if diff := cmp.Diff(want, l.Products()); diff != "" {
		t.Errorf("Products() (-want +got):\n%s", diff)
	}
}

func TestKeyIDOfSampleKey(t *testing.T) {
	l, k := sampleLinkAndKey(t)
	if got := rebuilderd.KeyID(k); got != sampleKeyID {
		t.Errorf("KeyID(instance key) = %s, want %s", got, sampleKeyID)
	}
	if ids := l.KeyIDs(); len(ids) != 2 || ids[1] != sampleKeyID {
		t.Errorf("KeyIDs() = %q, want the worker's and then %s", ids, sampleKeyID)
	}
}

func TestSampleInvalidDoesNotVerify(t *testing.T) {
	l, err := rebuilderd.Read(readSample(t, sampleInvalid))
	if err != nil {
		t.Fatalf("Read(%s) = %v", sampleInvalid, err)
	}
	_, k := sampleLinkAndKey(t)
	got, err := l.Verify(k)
	if !errors.Is(err, rebuilderd.ErrSignature) || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("Verify(instance key) = %v, want %v", err, rebuilderd.ErrSignature)
	}
	if len(got) != 0 {
		t.Errorf("Verify(instance key) verified %x", got)
	}
}

func TestSampleUntrustedKey(t *testing.T) {
	l, k := sampleLinkAndKey(t)
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Verify(other)
	if !errors.Is(err, rebuilderd.ErrNotTrusted) || !strings.Contains(err.Error(), "not signed by") {
		t.Fatalf("Verify(another key) = %v, want %v", err, rebuilderd.ErrNotTrusted)
	}
	if len(got) != 0 {
		t.Errorf("Verify(another key) verified %x", got)
	}
	if _, err := l.Verify(); !errors.Is(err, rebuilderd.ErrNotTrusted) {
		t.Errorf("Verify() = %v, want %v", err, rebuilderd.ErrNotTrusted)
	}
	// The trusted key among others, and twice, counts once.
	got, err = l.Verify(other, k, k)
	if err != nil || len(got) != 1 || !got[0].Equal(k) {
		t.Errorf("Verify(other, k, k) = %x, %v; want [%x], nil", got, err, k)
	}
}

// A signature is over the parsed "signed" object, not the file's bytes: the
// same link laid out otherwise still verifies, and one changed value does not.
func TestVerifyIsOverCanonicalJSON(t *testing.T) {
	_, k := sampleLinkAndKey(t)
	orig := string(readSample(t, sampleLink))
	for _, tc := range []struct {
		name    string
		from    string
		to      string
		wantErr error
	}{
		{"indented", `"signed":{"_type":"link",`, "\"signed\" : {\n  \"_type\" : \"link\" ,\n  ", nil},
		{"escaped space", `"rebuild filesystem`, `"rebuild\u0020filesystem`, nil},
		{"changed name", `"rebuild filesystem`, `"rebuild/filesystem`, rebuilderd.ErrSignature},
		{"unicode escape", `"_type":"link"`, `"_type":"\u006cink"`, nil},
		{"changed product", `"sha256":"6b6c3fee7432204840d3b6afc9bc1a68c28f591a47fb220071715c40cca956df"}},"environment"`, `"sha256":"0b6c3fee7432204840d3b6afc9bc1a68c28f591a47fb220071715c40cca956df"}},"environment"`, rebuilderd.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := strings.Replace(orig, tc.from, tc.to, 1)
			if b == orig {
				t.Fatalf("%q not in the sample", tc.from)
			}
			l, err := rebuilderd.Read([]byte(b))
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			if _, err := l.Verify(k); !errors.Is(err, tc.wantErr) {
				t.Errorf("Verify() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestReadRefuses(t *testing.T) {
	orig := string(readSample(t, sampleLink))
	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"duplicate field", `"_type":"link",`, `"_type":"link","name":"x",`, "duplicate field"},
		{"duplicate top-level field", `],"signed":`, `],"signatures":[],"signed":`, "duplicate field"},
		{"unknown field", `"command":[]`, `"command":[],"extra":1`, "unknown field"},
		{"missing field", `,"command":[]`, ``, "6 of the fields"},
		{"wrong _type", `"_type":"link"`, `"_type":"layout"`, `want "link"`},
		{"float", `"byproducts":{}`, `"byproducts":{"return-value":0.5}`, "not an integer"},
		{"control character", `"command":[]`, `"command":["a\nb"]`, "control character"},
		{"no sha256", `"sha256":"6b6c3fee7432204840d3b6afc9bc1a68c28f591a47fb220071715c40cca956df"}},"environment"`, `"md5":"x"}},"environment"`, "has no sha256"},
		{"bad sha256", `"sha256":"6b6c3fee7432204840d3b6afc9bc1a68c28f591a47fb220071715c40cca956df"}},"environment"`, `"sha256":"6B6C"}},"environment"`, "64 hex digits"},
		{"no signatures", orig[len(`{"signatures":[`):strings.Index(orig, `],"signed"`)], ``, "no signatures"},
		{"same keyid twice", `"keyid":"7e99d2c42018d60df4e14bbbc513dd378eb5dedc6a1eeb73465f1d670a76c770"`, `"keyid":"` + "1ae6d32cb5bb8a98312106de28e50af7e09a9b294d51df459537908ac1288b8f" + `"`, "two signatures"},
		{"short sig", `"sig":"455768f0`, `"sig":"`, "hex digits"},
		{"trailing data", `"command":[]}}`, `"command":[]}}{}`, "after the JSON value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := strings.Replace(orig, tc.from, tc.to, 1)
			if b == orig {
				t.Fatalf("%q not in the sample", tc.from)
			}
			_, err := rebuilderd.Read([]byte(b))
			if !errors.Is(err, rebuilderd.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read() = %v, want %v with %q", err, rebuilderd.ErrMalformed, tc.want)
			}
		})
	}
	big := make([]byte, rebuilderd.MaxLinkSize+1)
	if _, err := rebuilderd.Read(big); !errors.Is(err, rebuilderd.ErrTooLarge) {
		t.Errorf("Read(%d bytes) = %v, want %v", len(big), err, rebuilderd.ErrTooLarge)
	}
}
