package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

func policyVerifyCommand() command {
	return command{
		name:    "verify",
		args:    "ARTEFACT",
		summary: "check an artefact against your own policy: enough builders you trust rebuilt exactly these bytes",
		long: `Verify decides, on this machine and with keys you chose, whether ARTEFACT (a file, which
is hashed, or sha256:<hex>) was rebuilt to exactly these bytes by at least --threshold distinct
builders you trust. No farm is trusted, only signatures: every one is checked here, and each
piece of evidence is listed with why it did or did not count (trusted and agreeing, untrusted
key, bad signature, another artefact, revoked, too old, ...).

The policy, from flags or a file (--policy), or both:
  --trust KEY.pub        a builder you trust (repeatable): a PEM public key, ECDSA P-256 as
                         Lantern and cosign make them, or Ed25519 as rebuilderd publishes them
  --threshold N          how many distinct trusted builders must agree
  --author NAME=KEY.pub  a key trusted to author NAME (or NAME/... for every name under it):
                         its source claims, yanks and revocations count, and where a name has
                         authors, only rebuilds of a source they claimed count
  --max-age 90d          rebuilds older than this do not count
A policy file is JSON, with key files relative to it (or PEM keys written out):
  {"threshold": 2, "builders": ["builder-1.pub", "builder-2.pub"],
   "authors": {"golang.org/x/tools/...": ["go-release.pub"]}, "maxAge": "90d"}

The evidence, from any number of farms and local files:
  --farm URL             a Lantern farm (repeatable); it serves the signed envelopes about
                         the artefact and its source; --save DIR keeps them, to check again offline;
                         --farm-timeout (5m) is the time each farm has for all its answers
  --evidence PATH        a file or folder (repeatable): DSSE envelopes, Sigstore bundles, JSON
                         Lines of either, rebuilderd in-toto links. With --evidence alone, no
                         network is used.
` + vsaHelp + `
Exit codes: 0 verified; 1 not enough trusted agreement; 3 contradicted (a trusted builder got
other bytes for the same source and label, a trusted author's yank of the source, two sources
for one name@version); 2 the command line was wrong.

Examples:
  lantern verify --farm http://127.0.0.1:8080 --trust builder-1.pub --trust builder-2.pub \
    --threshold 2 --save evidence/ ~/go/bin/stringer
  lantern verify --policy policy.json --evidence evidence/ ~/go/bin/stringer
  lantern verify --trust reproducible-archlinux.pub --evidence filesystem.in-toto.link filesystem.pkg.tar.zst
  lantern verify --policy policy.json --evidence evidence/ --vsa verifier.key ~/go/bin/stringer`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			var trust, evidenceFlag, farms, authors listFlag
			f.Var(&trust, "trust", "a public key `FILE` of a builder you trust (repeatable)")
			f.Var(&authors, "author", "`NAME=KEY.pub`: a key trusted to author NAME, or NAME/... (repeatable)")
			threshold := f.Int("threshold", 0, "`N`: how many distinct trusted builders must have rebuilt exactly these bytes (default: the policy file's, else 1)")
			maxAge := f.String("max-age", "", "rebuilds older than this `AGE` (90d, 720h) do not count (default: the policy file's, else no limit)")
			policyFile := f.String("policy", "", "a policy `FILE` (JSON; see above); the flags add to it")
			f.Var(&evidenceFlag, "evidence", "a `PATH`, file or folder, of signed evidence (repeatable)")
			f.Var(&farms, "farm", "a Lantern farm's `URL` to fetch signed evidence from (repeatable)")
			save := f.String("save", "", "keep what was fetched from farms in `DIR`, to check again with --evidence DIR")
			farmTimeout := f.Duration("farm-timeout", 5*time.Minute, "the `TIME` each farm is given to answer, all its pages together; a farm that takes longer counts with what it sent")
			asJSON := f.Bool("json", false, "print the decision as JSON")
			var vsaOut vsaFlags
			vsaOut.register(f)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("verify takes one ARTEFACT: a file, or sha256:<hex>")
				}
				p, err := buildPolicy(*policyFile, trust, authors, *threshold, *maxAge)
				if err != nil {
					return err
				}
				if len(evidenceFlag) == 0 && len(farms) == 0 {
					return usagef("no evidence: give --farm URL (a farm to ask) or --evidence PATH (files or folders of signed attestations or in-toto links)")
				}
				for _, u := range farms {
					if _, err := evidence.ParseFarmURL(u); err != nil {
						return usagef("--farm: %v", err)
					}
				}
				if *farmTimeout <= 0 {
					return usagef("--farm-timeout %s: want a positive duration, such as 5m", *farmTimeout)
				}
				if *save != "" && len(farms) == 0 {
					return usagef("--save keeps what was fetched from farms: give --farm too")
				}
				artefact, err := artefactDigest(args[0])
				if err != nil {
					return err
				}
				if err := vsaOut.load(io); err != nil {
					return err
				}
				pieces, err := evidence.Files(evidenceFlag)
				if err != nil {
					return err
				}
				checked := verify.Check(p, pieces)
				var farmErrs []string
				if len(farms) > 0 {
					farmErrs = fetchEvidence(ctx, checked, artefact, farms, *save, *farmTimeout)
					for _, e := range farmErrs {
						fmt.Fprintf(io.err, "lantern verify: %s\n", printable(e))
					}
				}
				d := checked.Decide(artefact, time.Now())
				if err := vsaOut.write(io, d, args[0]); err != nil {
					return err
				}
				return printDecision(io, d, farmErrs, *asJSON)
			}
		},
	}
}

// buildPolicy reads the policy file, if any, and adds the flags to it.
func buildPolicy(file string, trust, authors []string, threshold int, maxAge string) (*verify.Policy, error) {
	p := &verify.Policy{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usagef("--policy: %v", err)
		}
		pf, err := verify.ParseFile(b)
		if err != nil {
			return nil, usagef("--policy %s: %v", file, err)
		}
		dir := filepath.Dir(file)
		p.Threshold, p.MaxAge = pf.Threshold, pf.MaxAge
		for _, k := range pf.Builders {
			key, err := policyKey(dir, k)
			if err != nil {
				return nil, usagef("--policy %s: builders: %v", file, err)
			}
			p.Builders = append(p.Builders, key)
		}
		for name, ks := range pf.Authors {
			for _, k := range ks {
				key, err := policyKey(dir, k)
				if err != nil {
					return nil, usagef("--policy %s: authors %q: %v", file, name, err)
				}
				p.Authors = append(p.Authors, verify.Author{Name: name, Key: key})
			}
		}
	}
	for _, t := range trust {
		key, err := readKey(t)
		if err != nil {
			return nil, usagef("--trust: %v", err)
		}
		p.Builders = append(p.Builders, key)
	}
	for _, a := range authors {
		name, file, ok := strings.Cut(a, "=")
		if !ok || name == "" || file == "" {
			return nil, usagef("--author %q: want NAME=KEY.pub, such as golang.org/x/tools/...=go-release.pub", a)
		}
		key, err := readKey(file)
		if err != nil {
			return nil, usagef("--author %s: %v", name, err)
		}
		p.Authors = append(p.Authors, verify.Author{Name: name, Key: key})
	}
	if threshold != 0 {
		p.Threshold = threshold
	}
	if p.Threshold == 0 {
		p.Threshold = 1
	}
	if maxAge != "" {
		age, err := verify.ParseAge(maxAge)
		if err != nil {
			return nil, usagef("--max-age: %v", err)
		}
		p.MaxAge = age
	}
	if len(p.Builders) == 0 {
		return nil, usagef("no trusted builder: give --trust KEY.pub (the public key of each builder whose rebuilds you accept), or --policy FILE")
	}
	if err := p.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return p, nil
}

func policyKey(dir, k string) (verify.Key, error) {
	if verify.IsPEM(k) {
		return verify.ParseKey([]byte(k), "(a key written in the policy)")
	}
	if !filepath.IsAbs(k) {
		k = filepath.Join(dir, k)
	}
	return readKey(k)
}

func readKey(file string) (verify.Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return verify.Key{}, err
	}
	return verify.ParseKey(b, file)
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

// maxSources bounds the sources asked about per farm: only sources trusted
// builders rebuilt to the artefact are asked about, so a farm cannot make
// its reader ask without end.
const maxSources = 32

// fetchEvidence asks each farm for the envelopes about the artefact, then
// about the sources trusted builders rebuilt it from (their other outputs,
// their claims), adds them to checked, and keeps what it fetched in saveDir
// if given. A farm that fails is reported, and the others still count.
// Each farm has timeout for all its answers: one that sends a byte at a
// time would otherwise hold its reader for two minutes a page, for up to
// MaxPages pages of each question.
func fetchEvidence(ctx context.Context, checked *verify.Checked, artefact lantern.Digest, farms []string, saveDir string, timeout time.Duration) []string {
	client := &http.Client{Timeout: 2 * time.Minute}
	var errs []string
	fs := make([]*evidence.Farm, len(farms))
	seen := make([]map[lantern.Digest]bool, len(farms))
	ctxs := make([]context.Context, len(farms))
	for i, u := range farms {
		var cancel context.CancelFunc
		ctxs[i], cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("farm %s: gave up after --farm-timeout %s", u, timeout))
		defer cancel()
		fs[i] = &evidence.Farm{URL: u, Client: client}
		if saveDir != "" {
			fs[i].Save = saver(saveDir, u)
		}
		got, err := fs[i].Artefact(ctxs[i], artefact)
		if err != nil {
			errs = append(errs, err.Error())
		}
		seen[i] = map[lantern.Digest]bool{}
		checked.Add(dedupe(seen[i], got))
	}
	sources := checked.Decide(artefact, time.Now()).Sources()
	if len(sources) > maxSources {
		errs = append(errs, fmt.Sprintf("asked about the first %d of %d sources only", maxSources, len(sources)))
		sources = sources[:maxSources]
	}
	for i, f := range fs {
		for _, s := range sources {
			if ctxs[i].Err() != nil {
				break
			}
			got, err := f.Source(ctxs[i], s)
			if err != nil {
				errs = append(errs, err.Error())
			}
			checked.Add(dedupe(seen[i], got))
		}
		if ctx.Err() == nil && ctxs[i].Err() != nil {
			errs = append(errs, context.Cause(ctxs[i]).Error())
		}
	}
	return errs
}

// dedupe drops a piece that one farm served twice (as evidence about the
// artefact and about its source). The same envelope from two farms stays
// twice: each is listed, and its builder counted once.
func dedupe(seen map[lantern.Digest]bool, pieces []verify.Piece) []verify.Piece {
	out := pieces[:0]
	for _, pc := range pieces {
		d := lantern.DigestOf(pc.Raw)
		if seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, pc)
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// saver writes a farm's pages below dir, in a folder named for the farm.
// It writes through an os.Root: dir may have come from someone else (a
// folder of evidence handed over, refreshed here), and a symbolic link in it
// where the farm's folder or a page goes must not carry a farm's answer to
// a file outside dir.
func saver(dir, farm string) func(string, []byte) error {
	sub := unsafeName.ReplaceAllString(strings.TrimPrefix(strings.TrimPrefix(farm, "https://"), "http://"), "_")
	return func(name string, b []byte) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--save: %w", err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return fmt.Errorf("--save: %w", err)
		}
		defer root.Close()
		if err := root.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("--save %s: %w", dir, err)
		}
		if err := root.WriteFile(filepath.Join(sub, name), b, 0o644); err != nil {
			return fmt.Errorf("--save %s: %w", dir, err)
		}
		return nil
	}
}

// printable escapes, as Go does in a quoted string, every character of s
// that is not printable: line ends, terminal escapes, bidirectional
// overrides, invalid UTF-8. Evidence names and says things an attacker
// chose (the names of files handed over, a farm's error answers, the
// reason a hostile source failed to build), and none of it may print a line
// of its own, one that looks like another piece's or the verdict, or move
// the terminal's cursor.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], string(utf8.RuneError)):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// printDecision writes the decision and returns the error that makes the
// exit code: nil (0) verified, 1 not verified, 3 contradicted.
func printDecision(io *stdio, d *verify.Decision, farmErrs []string, asJSON bool) error {
	if asJSON {
		out := struct {
			*verify.Decision
			FarmErrors []string `json:"farmErrors,omitempty"`
		}{d, farmErrs}
		b, err := json.MarshalIndent(out, "", "  ")
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
			fmt.Fprintf(io.out, "%s %s: %s\n", mark, printable(e.Origin), printable(e.Why))
		}
		for _, c := range d.Contradictions {
			fmt.Fprintf(io.out, "! %s\n", printable(c))
		}
		fmt.Fprintf(io.out, "%s: %s, %d of %d trusted builders agree\n", d.Artefact, d.Result, len(d.Agreeing), d.Threshold)
	}
	switch d.Result {
	case verify.Verified:
		return nil
	case verify.Contradicted:
		return &contradictedError{fmt.Sprintf("%s: contradicted: %s", d.Artefact, printable(strings.Join(d.Contradictions, "; ")))}
	}
	return fmt.Errorf("%s: not verified: %d of %d trusted builders agree", d.Artefact, len(d.Agreeing), d.Threshold)
}
