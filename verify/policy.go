// Package verify decides, on a client and with keys the client chose,
// whether an artefact was rebuilt to exactly its bytes by enough builders
// the client trusts. It is pure: a Policy (trusted builder keys, a
// threshold, the keys trusted to author a name, a maximum age) and pieces of
// evidence go in, a Decision comes out, listing every piece with why it
// counted or not. It never fetches anything and never takes trust from the
// evidence it weighs: a farm, a file or a link only ever brings signatures,
// and a signature counts only if the policy names its key. Reading evidence
// from farms and files is the job of package verify/evidence.
package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/rebuilderd"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

// Key is a public key the policy trusts: ECDSA P-256, as Lantern and cosign
// make them, or Ed25519, as rebuilderd publishes them.
type Key struct {
	// ID is the key's id: Lantern's "sha256:<hex of the DER>" for ECDSA,
	// "sha256:" and rebuilderd's key id for Ed25519.
	ID string
	// Name says where the key came from (its file), for people.
	Name  string
	ecdsa *keys.Public
	ed    ed25519.PublicKey
}

// ParseKey reads a PEM public key. name is kept to say where it came from.
func ParseKey(pemBytes []byte, name string) (Key, error) {
	if k, err := keys.ParsePublic(pemBytes); err == nil {
		return Key{ID: k.ID().String(), Name: name, ecdsa: k}, nil
	}
	k, err := rebuilderd.ParsePublicKey(pemBytes)
	if err != nil {
		return Key{}, fmt.Errorf("key %s: neither an ECDSA P-256 key (Lantern, cosign) nor an Ed25519 key (rebuilderd): %w", name, err)
	}
	return Key{ID: lantern.DigestPrefix + rebuilderd.KeyID(k), Name: name, ed: k}, nil
}

// String names the key for people: its file, and its id.
func (k Key) String() string {
	if k.Name == "" {
		return k.ID
	}
	return k.Name + " (" + k.ID + ")"
}

// Author is a key trusted to author the sources whose name matches Name:
// exactly, or, for a Name ending in "/...", every name under it.
type Author struct {
	Name string
	Key  Key
}

// Authors returns whether a names the source name.
func (a Author) authors(name string) bool {
	if prefix, ok := strings.CutSuffix(a.Name, "/..."); ok {
		return name == prefix || strings.HasPrefix(name, prefix+"/")
	}
	return a.Name == name
}

// Policy is what a client trusts.
type Policy struct {
	// Builders are the keys of the builders whose rebuilds count.
	Builders []Key
	// Threshold is how many distinct trusted builders must have rebuilt
	// exactly the artefact.
	Threshold int
	// Authors are the keys whose source claims, yanks and revocations
	// count. Where a source's name has authors, only the sources they
	// claimed count.
	Authors []Author
	// MaxAge, if not zero, is the age past which a rebuild no longer counts.
	MaxAge time.Duration
}

// Errors a policy reports.
var (
	ErrPolicy = errors.New("bad policy")
)

// Validate checks that p can decide anything.
func (p *Policy) Validate() error {
	if len(p.Builders) == 0 {
		return fmt.Errorf("%w: no trusted builder key: name at least one", ErrPolicy)
	}
	if p.Threshold < 1 {
		return fmt.Errorf("%w: threshold %d: want at least 1", ErrPolicy, p.Threshold)
	}
	if p.MaxAge < 0 {
		return fmt.Errorf("%w: maximum age %s: want a positive duration, or none", ErrPolicy, p.MaxAge)
	}
	for _, a := range p.Authors {
		if err := validAuthorName(a.Name); err != nil {
			return err
		}
	}
	return nil
}

func validAuthorName(name string) error {
	if name == "" || name == "/..." || strings.ContainsAny(name, " \t\r\n") || strings.Contains(strings.TrimSuffix(name, "/..."), "...") {
		return fmt.Errorf("%w: author name %q: want a source name, such as golang.org/x/tools/cmd/stringer, or a prefix such as golang.org/x/tools/...", ErrPolicy, name)
	}
	return nil
}

// Digest names the policy: the sha256 of its canonical form (the keys by
// id, sorted; the threshold; the authors; the maximum age), so that two
// policies that trust the same things have the same digest whatever their
// files are called.
func (p *Policy) Digest() lantern.Digest {
	type author struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	}
	c := struct {
		Builders  []string `json:"builders"`
		Threshold int      `json:"threshold"`
		Authors   []author `json:"authors"`
		MaxAge    string   `json:"maxAge,omitempty"`
	}{Threshold: p.Threshold, Builders: []string{}, Authors: []author{}}
	for _, k := range p.Builders {
		c.Builders = append(c.Builders, k.ID)
	}
	slices.Sort(c.Builders)
	c.Builders = slices.Compact(c.Builders)
	for _, a := range p.Authors {
		c.Authors = append(c.Authors, author{a.Name, a.Key.ID})
	}
	slices.SortFunc(c.Authors, func(a, b author) int {
		return strings.Compare(a.Name+"\x00"+a.Key, b.Name+"\x00"+b.Key)
	})
	c.Authors = slices.Compact(c.Authors)
	if p.MaxAge > 0 {
		c.MaxAge = p.MaxAge.String()
	}
	b, _ := json.Marshal(c)
	return lantern.DigestOf(b)
}

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// File is a policy as written in a file (JSON):
//
//	{
//	  "threshold": 2,
//	  "builders": ["keys/builder-1.pub", "keys/reproducible-archlinux.pub"],
//	  "authors": {"golang.org/x/tools/...": ["keys/go-release.pub"]},
//	  "maxAge": "2160h"
//	}
//
// A key is a file name, relative to the policy file, or a PEM public key
// written out in the string.
type File struct {
	Threshold int
	Builders  []string
	Authors   map[string][]string
	MaxAge    time.Duration
}

// ParseFile reads a policy file strictly: an unknown field, a duplicate
// field or anything after the object is an error, which names it.
func ParseFile(b []byte) (*File, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPolicy, len(b), MaxPolicySize)
	}
	f := &File{}
	strs := func(d *strictjson.Decoder, field string, out *[]string) error {
		*out = []string{}
		return d.Array(func(d *strictjson.Decoder) error {
			s, err := d.String()
			if err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			*out = append(*out, s)
			return nil
		})
	}
	d := strictjson.NewDecoder(b)
	err := d.Object(func(d *strictjson.Decoder, field []byte) error {
		switch string(field) {
		case "threshold":
			raw, err := d.Raw()
			if err != nil {
				return fmt.Errorf("threshold: %w", err)
			}
			n, err := strconv.Atoi(string(raw))
			if err != nil || n < 1 {
				return fmt.Errorf("threshold %.20s: want a whole number, at least 1", raw)
			}
			f.Threshold = n
			return nil
		case "builders":
			return strs(d, "builders", &f.Builders)
		case "authors":
			f.Authors = map[string][]string{}
			return d.Object(func(d *strictjson.Decoder, field []byte) error {
				n := string(field)
				if err := validAuthorName(n); err != nil {
					return err
				}
				var ks []string
				if err := strs(d, "authors \""+n+"\"", &ks); err != nil {
					return err
				}
				f.Authors[n] = ks
				return nil
			})
		case "maxAge":
			s, err := d.String()
			if err != nil {
				return fmt.Errorf("maxAge: %w", err)
			}
			if f.MaxAge, err = ParseAge(s); err != nil {
				return fmt.Errorf("maxAge: %w", err)
			}
			return nil
		}
		return fmt.Errorf("unknown field %.40q: a policy has threshold, builders, authors and maxAge", field)
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return f, nil
}

// ParseAge reads a maximum age: a Go duration ("720h") or a number of days
// ("90d").
func ParseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days || n < 1 || n > 100000 {
			return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 720h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	age, err := time.ParseDuration(s)
	if err != nil || age <= 0 {
		return 0, fmt.Errorf("%q: want a number of days such as 90d, or a duration such as 720h", s)
	}
	return age, nil
}

// IsPEM reports whether a key string in a policy file is a PEM key written
// out, rather than a file name.
func IsPEM(s string) bool {
	return bytes.HasPrefix(bytes.TrimSpace([]byte(s)), []byte("-----BEGIN "))
}
