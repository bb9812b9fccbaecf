package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
)

func TestParseFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    *verify.File
		wantErr string // in the error, which is then ErrPolicy
	}{
		{name: "full", in: `{
  "threshold": 2,
  "builders": ["keys/builder-1.pub", "keys/reproducible-archlinux.pub"],
  "authors": {"golang.org/x/tools/...": ["keys/go-release.pub"], "example.org/tool": []},
  "maxAge": "2160h"
}`, want: &verify.File{Threshold: 2, Builders: []string{"keys/builder-1.pub", "keys/reproducible-archlinux.pub"},
			Authors: map[string][]string{"golang.org/x/tools/...": {"keys/go-release.pub"}, "example.org/tool": {}}, MaxAge: 2160 * time.Hour}},
		{name: "days", in: `{"maxAge":"90d"}`, want: &verify.File{MaxAge: 90 * 24 * time.Hour}},
		{name: "empty object", in: `{}`, want: &verify.File{}},
		{name: "a PEM key written out", in: `{"builders":["-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"]}`,
			want: &verify.File{Builders: []string{"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"}}},

		{name: "unknown field", in: `{"threshold":1,"trust":["a.pub"]}`, wantErr: `unknown field "trust"`},
		{name: "a field in another case", in: `{"Threshold":1}`, wantErr: "unknown field"},
		{name: "duplicate field", in: `{"threshold":1,"threshold":5}`, wantErr: "duplicate"},
		{name: "duplicate author", in: `{"authors":{"a":["x.pub"],"a":["y.pub"]}}`, wantErr: "duplicate"},
		{name: "after the object", in: `{"threshold":1} {"threshold":2}`, wantErr: "bad policy"},
		{name: "not an object", in: `["a.pub"]`, wantErr: "bad policy"},
		{name: "empty", in: ``, wantErr: "bad policy"},
		{name: "threshold 0", in: `{"threshold":0}`, wantErr: "threshold 0: want a whole number, at least 1"},
		{name: "threshold negative", in: `{"threshold":-1}`, wantErr: "threshold -1"},
		{name: "threshold fraction", in: `{"threshold":1.5}`, wantErr: "threshold 1.5"},
		{name: "threshold exponent", in: `{"threshold":1e1}`, wantErr: "threshold 1e1"},
		{name: "threshold string", in: `{"threshold":"2"}`, wantErr: "threshold"},
		{name: "threshold null", in: `{"threshold":null}`, wantErr: "threshold"},
		{name: "threshold too large", in: `{"threshold":99999999999999999999999}`, wantErr: "threshold"},
		{name: "builders not strings", in: `{"builders":[1]}`, wantErr: "builders"},
		{name: "builders not a list", in: `{"builders":"a.pub"}`, wantErr: "bad policy"},
		{name: "author name with a space", in: `{"authors":{"a b":["x.pub"]}}`, wantErr: `author name "a b"`},
		{name: "author name empty", in: `{"authors":{"":["x.pub"]}}`, wantErr: "author name"},
		{name: "author name all", in: `{"authors":{"/...":["x.pub"]}}`, wantErr: "author name"},
		{name: "author name with ... inside", in: `{"authors":{"a/.../b":["x.pub"]}}`, wantErr: "author name"},
		{name: "author keys not strings", in: `{"authors":{"a":[{}]}}`, wantErr: `authors "a"`},
		{name: "maxAge zero", in: `{"maxAge":"0s"}`, wantErr: "maxAge"},
		{name: "maxAge negative", in: `{"maxAge":"-1h"}`, wantErr: "maxAge"},
		{name: "maxAge a number", in: `{"maxAge":90}`, wantErr: "maxAge"},
		{name: "invalid UTF-8", in: "{\"builders\":[\"\xff\"]}", wantErr: "bad policy"},
		{name: "too large", in: `{"builders":["` + strings.Repeat("a", verify.MaxPolicySize) + `"]}`, wantErr: "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := verify.ParseFile([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, verify.ErrPolicy) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseFile() = %+v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFile() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseFile() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: an error
	}{
		{"90d", 90 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"100000d", 100000 * 24 * time.Hour},
		{"720h", 720 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1ns", 1},
		{"0d", 0}, {"-5d", 0}, {"+5d", 0}, {"05d", 0}, {" 5d", 0}, {"5 d", 0}, {"100001d", 0}, {"99999999999999999999d", 0},
		{"d", 0}, {"", 0}, {"0s", 0}, {"-1h", 0}, {"90", 0}, {"1w", 0}, {"9999999999h", 0},
	} {
		got, err := verify.ParseAge(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("ParseAge(%q) = %s, want an error", tc.in, got)
		case tc.want == 0 && !strings.Contains(err.Error(), "want a number of days"):
			t.Errorf("ParseAge(%q) = %v, want an error that says what to give", tc.in, err)
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("ParseAge(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	p := newParties(t)
	for _, tc := range []struct {
		name    string
		policy  verify.Policy
		wantErr string
	}{
		{"fine", verify.Policy{Builders: []verify.Key{p.a.key}, Threshold: 1}, ""},
		{"with authors and an age", verify.Policy{Builders: []verify.Key{p.a.key}, Threshold: 3, MaxAge: time.Hour,
			Authors: []verify.Author{{Name: "example.org/...", Key: p.author.key}, {Name: "example.org/tool", Key: p.author.key}}}, ""},
		{"no builders", verify.Policy{Threshold: 1}, "no trusted builder"},
		{"threshold 0", verify.Policy{Builders: []verify.Key{p.a.key}}, "threshold 0"},
		{"negative age", verify.Policy{Builders: []verify.Key{p.a.key}, Threshold: 1, MaxAge: -time.Hour}, "maximum age"},
		{"author of everything", verify.Policy{Builders: []verify.Key{p.a.key}, Threshold: 1, Authors: []verify.Author{{Name: "/...", Key: p.author.key}}}, "author name"},
		{"author name with a newline", verify.Policy{Builders: []verify.Key{p.a.key}, Threshold: 1, Authors: []verify.Author{{Name: "a\nb", Key: p.author.key}}}, "author name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tc.wantErr != "" && (err == nil || !errors.Is(err, verify.ErrPolicy) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// TestPolicyDigest: two policies that trust the same things have one
// digest, whatever the order or repetition of their keys or the names of
// their files; any change in what they trust changes it.
func TestPolicyDigest(t *testing.T) {
	p := newParties(t)
	base := verify.Policy{Builders: []verify.Key{p.a.key, p.b.key}, Threshold: 2,
		Authors: []verify.Author{{Name: "example.org/...", Key: p.author.key}, {Name: "example.org/tool", Key: p.author2.key}}}
	renamed := p.a.key
	renamed.Name = "elsewhere/a.pub"
	same := []verify.Policy{
		{Builders: []verify.Key{p.b.key, p.a.key}, Threshold: 2, Authors: []verify.Author{{Name: "example.org/tool", Key: p.author2.key}, {Name: "example.org/...", Key: p.author.key}}},
		{Builders: []verify.Key{p.a.key, p.b.key, p.a.key}, Threshold: 2, Authors: []verify.Author{{Name: "example.org/...", Key: p.author.key}, {Name: "example.org/tool", Key: p.author2.key}, {Name: "example.org/...", Key: p.author.key}}},
		{Builders: []verify.Key{renamed, p.b.key}, Threshold: 2, Authors: base.Authors},
	}
	for i, o := range same {
		if base.Digest() != o.Digest() {
			t.Errorf("Digest() of policy %d = %s, want %s as the first's", i, o.Digest(), base.Digest())
		}
	}
	other := []verify.Policy{
		{Builders: []verify.Key{p.a.key, p.b.key}, Threshold: 1, Authors: base.Authors},
		{Builders: []verify.Key{p.a.key}, Threshold: 2, Authors: base.Authors},
		{Builders: []verify.Key{p.a.key, p.c.key}, Threshold: 2, Authors: base.Authors},
		{Builders: base.Builders, Threshold: 2},
		{Builders: base.Builders, Threshold: 2, Authors: []verify.Author{{Name: "example.org/tool", Key: p.author.key}, {Name: "example.org/tool", Key: p.author2.key}}},
		{Builders: base.Builders, Threshold: 2, Authors: []verify.Author{{Name: "example.org/...", Key: p.author2.key}, {Name: "example.org/tool", Key: p.author.key}}},
		{Builders: base.Builders, Threshold: 2, Authors: base.Authors, MaxAge: time.Hour},
		// An author is not a builder, nor a builder an author.
		{Builders: []verify.Key{p.a.key, p.b.key, p.author.key}, Threshold: 2, Authors: []verify.Author{{Name: "example.org/tool", Key: p.author2.key}}},
	}
	seen := map[lantern.Digest]int{base.Digest(): -1}
	for i, o := range other {
		d := o.Digest()
		if j, ok := seen[d]; ok {
			t.Errorf("Digest() of policy %d = %s, the same as policy %d's", i, d, j)
		}
		seen[d] = i
	}
	var zero verify.Policy
	if zero.Digest().IsZero() {
		t.Error("Digest() of the zero Policy is the zero Digest")
	}
}

func TestParseKey(t *testing.T) {
	sample := readSample(t, sampleKey)
	k, err := verify.ParseKey(sample, "reproducible-archlinux.pub")
	if err != nil {
		t.Fatalf("ParseKey(the rebuilderd sample key, with a NULL parameter) = %v", err)
	}
	if want := "sha256:" + sampleKeyID; k.ID != want {
		t.Errorf("ParseKey(sample).ID = %s, want %s, the keyid its link names", k.ID, want)
	}
	if got, want := k.String(), "reproducible-archlinux.pub (sha256:"+sampleKeyID+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	k.Name = ""
	if got := k.String(); got != "sha256:"+sampleKeyID {
		t.Errorf("String() without a name = %q, want the id", got)
	}

	rsaLike, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaLike.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"nothing":          nil,
		"text":             []byte("not a key"),
		"a P-384 key":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"a private header": []byte(strings.Replace(string(sample), "PUBLIC KEY", "PRIVATE KEY", -1)),
		"two keys":         append(append([]byte{}, sample...), sample...),
	} {
		if k, err := verify.ParseKey(b, name); err == nil || !strings.Contains(err.Error(), "neither an ECDSA P-256 key") || !strings.Contains(err.Error(), name) {
			t.Errorf("ParseKey(%s) = %+v, %v; want an error that names it and the kinds of key", name, k, err)
		}
	}
}

func TestIsPEM(t *testing.T) {
	for in, want := range map[string]bool{
		"-----BEGIN PUBLIC KEY-----\n...":     true,
		"\n  -----BEGIN PUBLIC KEY-----\n...": true,
		"keys/builder-1.pub":                  false,
		"/abs/-----BEGIN ":                    false,
		"":                                    false,
	} {
		if got := verify.IsPEM(in); got != want {
			t.Errorf("IsPEM(%q) = %v, want %v", in, got, want)
		}
	}
}
