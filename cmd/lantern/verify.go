package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/rebuilderd"
)

func policyVerifyCommand() command {
	return command{
		name:    "verify",
		args:    "ARTEFACT",
		summary: "check an artefact against your own policy: enough builders you trust rebuilt exactly these bytes",
		long: `Verify decides, on this machine and with keys you chose, whether ARTEFACT (a file, which
is hashed, or sha256:<hex>) was rebuilt to exactly these bytes by at least --threshold distinct
builders you trust (--trust, repeatable: a PEM public key, ECDSA P-256 as Lantern and cosign make
them, or Ed25519 as rebuilderd publishes them). The evidence is read from files and folders
(--evidence, repeatable): Lantern's signed attestations (DSSE envelopes) and rebuilderd's in-toto
links. No farm is trusted, only signatures: every one is checked here. Each piece of evidence is
listed with why it did or did not count.

Exit codes: 0 verified; 1 not enough trusted agreement; 3 contradicted (a trusted builder got other
bytes for the same source and label); 2 the command line was wrong.

Example:
  lantern verify --trust reproducible-archlinux.pub --evidence filesystem.in-toto.link filesystem.pkg.tar.zst`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			var trust, evidence listFlag
			f.Var(&trust, "trust", "a public key `FILE` of a builder you trust (repeatable)")
			f.Var(&evidence, "evidence", "a `PATH`, file or folder, of signed evidence: Lantern attestations, rebuilderd in-toto links (repeatable)")
			threshold := f.Int("threshold", 1, "how many distinct trusted builders must have rebuilt exactly these bytes")
			asJSON := f.Bool("json", false, "print the decision as JSON")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("verify takes one ARTEFACT: a file, or sha256:<hex>")
				}
				if len(trust) == 0 {
					return usagef("--trust is required: the public key of each builder whose rebuilds you accept")
				}
				if len(evidence) == 0 {
					return usagef("--evidence is required: files or folders of signed attestations or in-toto links")
				}
				if *threshold < 1 {
					return usagef("--threshold %d: want at least 1", *threshold)
				}
				artefact, err := artefactDigest(args[0])
				if err != nil {
					return err
				}
				p, err := loadPolicy(trust)
				if err != nil {
					return err
				}
				var files []string
				for _, e := range evidence {
					found, err := evidenceFiles(e)
					if err != nil {
						return fmt.Errorf("--evidence %s: %w", e, err)
					}
					files = append(files, found...)
				}
				d := p.decide(artefact, *threshold, files)
				return d.print(io, *asJSON)
			}
		},
	}
}

// artefactDigest reads ARTEFACT: sha256:<hex>, or a file to hash.
func artefactDigest(arg string) (lantern.Digest, error) {
	if strings.HasPrefix(arg, lantern.DigestPrefix) {
		d, err := lantern.ParseDigest(arg)
		if err != nil {
			return lantern.Digest{}, usagef("ARTEFACT %q: %v", arg, err)
		}
		return d, nil
	}
	d, _, err := lantern.DigestFile(arg)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("ARTEFACT: %w", err)
	}
	return d, nil
}

// policy is the keys a client trusts.
type policy struct {
	ecdsa []*keys.Public
	ed    []ed25519.PublicKey
	names map[string]string // key id → the file it came from
}

func loadPolicy(files []string) (*policy, error) {
	p := &policy{names: map[string]string{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--trust: %w", err)
		}
		if k, err := keys.ParsePublic(b); err == nil {
			p.ecdsa = append(p.ecdsa, k)
			p.names[k.ID().String()] = f
			continue
		}
		k, err := rebuilderd.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("--trust %s: neither an ECDSA P-256 key (Lantern, cosign) nor an Ed25519 key (rebuilderd): %w", f, err)
		}
		p.ed = append(p.ed, k)
		p.names[rebuilderd.KeyID(k)] = f
	}
	return p, nil
}

// evidenceFiles returns path, or the regular files below it.
func evidenceFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	return out, err
}

// maxEvidence bounds one evidence file.
const maxEvidence = 4 << 20

// counted is one piece of evidence and what it came to.
type counted struct {
	File string `json:"file"`
	// Builder is the trusted key that signed it, if one did.
	Builder string `json:"builder,omitempty"`
	// Counts reports whether it is a trusted builder's rebuild to exactly
	// the artefact.
	Counts bool   `json:"counts"`
	Why    string `json:"why"`
	// about names what was rebuilt (source and label, or the product), to
	// find trusted rebuilds of the same thing to other bytes.
	about  string
	output lantern.Digest
}

// decision is verify's answer.
type decision struct {
	Artefact  lantern.Digest `json:"artefact"`
	Threshold int            `json:"threshold"`
	Agreeing  []string       `json:"agreeing"`
	Verdict   string         `json:"verdict"` // verified, not-verified, contradicted
	Evidence  []counted      `json:"evidence"`
}

func (p *policy) decide(artefact lantern.Digest, threshold int, files []string) *decision {
	d := &decision{Artefact: artefact, Threshold: threshold, Agreeing: []string{}}
	for _, f := range files {
		d.Evidence = append(d.Evidence, p.weigh(artefact, f)...)
	}
	agreeing := map[string]bool{}
	about := map[string]bool{}
	for _, e := range d.Evidence {
		if e.Counts {
			agreeing[e.Builder] = true
			about[e.about] = true
		}
	}
	contradicted := false
	for i, e := range d.Evidence {
		if e.Builder != "" && !e.output.IsZero() && e.output != artefact && about[e.about] {
			d.Evidence[i].Why = fmt.Sprintf("contradicts: a trusted builder got %s for %s", e.output, e.about)
			contradicted = true
		}
	}
	for b := range agreeing {
		d.Agreeing = append(d.Agreeing, b)
	}
	slices.Sort(d.Agreeing)
	switch {
	case contradicted:
		d.Verdict = "contradicted"
	case len(d.Agreeing) >= threshold:
		d.Verdict = "verified"
	default:
		d.Verdict = "not-verified"
	}
	return d
}

// weigh reads one evidence file and says what each piece in it counts for.
func (p *policy) weigh(artefact lantern.Digest, file string) []counted {
	c := counted{File: file}
	b, err := readBounded(file, maxEvidence)
	if err != nil {
		c.Why = err.Error()
		return []counted{c}
	}
	if link, err := rebuilderd.Read(b); err == nil {
		return []counted{p.weighLink(artefact, c, link)}
	}
	env, err := dsse.Unmarshal(b)
	if err != nil {
		c.Why = "neither a Lantern attestation (DSSE envelope) nor a rebuilderd in-toto link: " + err.Error()
		return []counted{c}
	}
	return []counted{p.weighEnvelope(artefact, c, env)}
}

func (p *policy) weighLink(artefact lantern.Digest, c counted, link *rebuilderd.Link) counted {
	verified, err := link.Verify(p.ed...)
	switch {
	case errors.Is(err, rebuilderd.ErrNotTrusted):
		c.Why = "untrusted key: " + err.Error()
		return c
	case err != nil:
		c.Why = "bad signature: " + err.Error()
		return c
	}
	// A link counts once, for the first trusted key that signed it: the
	// keys of one rebuilder (its worker's, its instance's) are one builder.
	c.Builder = rebuilderd.KeyID(verified[0])
	products := link.Products()
	names := slices.Sorted(maps.Keys(products))
	for _, name := range names {
		if d := products[name]; d == artefact {
			c.Counts, c.about = true, "product "+name
			c.Why = fmt.Sprintf("trusted (%s) and agreeing: %s is %s", p.names[c.Builder], name, d)
			return c
		}
	}
	if len(names) > 0 {
		c.about, c.output = "product "+names[0], products[names[0]]
	}
	c.Why = "another artefact: none of its products is " + artefact.String()
	return c
}

func (p *policy) weighEnvelope(artefact lantern.Digest, c counted, env *dsse.Envelope) counted {
	var v *attest.Verified
	for _, k := range p.ecdsa {
		var err error
		if v, err = attest.Verify(env, k); err == nil {
			break
		}
		if !errors.Is(err, dsse.ErrSignature) {
			c.Why = "trusted key, invalid attestation: " + err.Error()
			return c
		}
	}
	if v == nil {
		c.Why = "untrusted key, or a bad signature: no trusted key's signature verifies"
		return c
	}
	c.Builder = v.Signer.String()
	r, ok := v.Claim.(*lantern.Rebuild)
	if !ok {
		c.Why = fmt.Sprintf("trusted (%s), but a %s claim, not a rebuild", p.names[c.Builder], v.Claim.Kind())
		return c
	}
	c.about = r.Source.String() + " (" + r.Source.Digest.String() + ") " + r.Label
	if r.Output != artefact {
		c.output = r.Output
		c.Why = "another artefact: " + r.Output.String()
		return c
	}
	c.Counts = true
	c.Why = fmt.Sprintf("trusted (%s) and agreeing: rebuilt %s", p.names[c.Builder], c.about)
	return c
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%d bytes, more than evidence may hold (%d)", fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}

// print writes the decision and returns the error that makes the exit
// code: nil (0) verified, 1 not verified, 3 contradicted.
func (d *decision) print(io *stdio, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(io.out, "%s\n", b)
	} else {
		for _, e := range d.Evidence {
			mark := "-"
			if e.Counts {
				mark = "+"
			}
			fmt.Fprintf(io.out, "%s %s: %s\n", mark, e.File, e.Why)
		}
		fmt.Fprintf(io.out, "%s: %s, %d of %d trusted builders agree\n", d.Artefact, d.Verdict, len(d.Agreeing), d.Threshold)
	}
	switch d.Verdict {
	case "verified":
		return nil
	case "contradicted":
		return &contradictedError{fmt.Sprintf("%s: contradicted by a trusted builder", d.Artefact)}
	}
	return fmt.Errorf("%s: not verified: %d of %d trusted builders agree", d.Artefact, len(d.Agreeing), d.Threshold)
}
