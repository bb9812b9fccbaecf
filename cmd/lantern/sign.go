package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
)

// sourceFlags are the flags that name a source, shared by "claim sign" and
// "attest sign".
type sourceFlags struct {
	source, digest, file, goSum string
}

func (s *sourceFlags) register(f *flag.FlagSet) {
	f.StringVar(&s.source, "source", "", "the source as `NAME@VERSION`")
	f.StringVar(&s.digest, "source-digest", "", "sha256 `DIGEST` of the source archive (sha256:<64 hex>)")
	f.StringVar(&s.file, "source-file", "", "the source archive `FILE`, hashed instead of giving --source-digest")
	f.StringVar(&s.goSum, "go-sum", "", "Go's module `HASH` (h1:..., as in go.sum), for Go sources")
}

func (s *sourceFlags) parse() (lantern.Source, error) {
	if s.source == "" {
		return lantern.Source{}, usagef("--source is required: NAME@VERSION, for example --source golang.org/x/tools/cmd/stringer@v0.30.0")
	}
	at := strings.LastIndex(s.source, "@")
	if at <= 0 || at == len(s.source)-1 {
		return lantern.Source{}, usagef("--source %q: want NAME@VERSION", s.source)
	}
	src := lantern.Source{Name: s.source[:at], Version: s.source[at+1:], GoSum: s.goSum}
	switch {
	case s.digest != "" && s.file != "":
		return lantern.Source{}, usagef("give --source-digest or --source-file, not both")
	case s.digest != "":
		d, err := lantern.ParseDigest(s.digest)
		if err != nil {
			return lantern.Source{}, usagef("--source-digest: %v", err)
		}
		src.Digest = d
	case s.file != "":
		d, _, err := lantern.DigestFile(s.file)
		if err != nil {
			return lantern.Source{}, fmt.Errorf("--source-file: %w", err)
		}
		src.Digest = d
	default:
		return lantern.Source{}, usagef("--source-digest or --source-file is required: the sha256 of the source archive")
	}
	if err := src.Validate(); err != nil {
		return lantern.Source{}, usagef("--source: %v", err)
	}
	return src, nil
}

// artefactFlag collects repeated --artefact LABEL=DIGEST|FILE.
type artefactFlag map[string]lantern.Digest

func (a artefactFlag) String() string { return "" }

func (a artefactFlag) Set(v string) error {
	label, val, ok := strings.Cut(v, "=")
	if !ok || label == "" || val == "" {
		return fmt.Errorf("%q: want LABEL=sha256:<hex> or LABEL=FILE", v)
	}
	if _, dup := a[label]; dup {
		return fmt.Errorf("label %q given twice", label)
	}
	var d lantern.Digest
	var err error
	if strings.HasPrefix(val, lantern.DigestPrefix) {
		d, err = lantern.ParseDigest(val)
	} else {
		d, _, err = lantern.DigestFile(val)
	}
	if err != nil {
		return err
	}
	a[label] = d
	return nil
}

func claimSignCommand() command {
	return command{
		name:    "claim sign",
		summary: "sign a source claim: NAME@VERSION is source S",
		long: `Claim sign writes a signed source claim: "NAME@VERSION is the source archive
with this sha256", optionally with the artefacts the project published, by
label. The claim is an in-toto statement in a DSSE envelope; the scheduler
turns it into rebuild jobs.

The generic recipe needs a build spec, a JSON file given with --build:
  {"image": "registry.example/builder@sha256:<hex>",
   "commands": ["./configure", "make", "cp hello \"$OUT/hello\""],
   "outputs": {"hello-linux-amd64": "hello"},
   "env": {"CFLAGS": "-O2"}, "sourceDate": "2024-01-02T03:04:05Z"}
(env and sourceDate, the build's SOURCE_DATE_EPOCH, may be left out).

Example:
  lantern claim sign --key maintainer.key \
    --source example.org/hello@v1.2.0 --source-file hello-1.2.0.tar.gz \
    --fetch https://example.org/hello-1.2.0.tar.gz --recipe generic \
    --build hello.build.json \
    --artefact hello-linux-amd64=dist/hello -o hello-1.2.0.claim.json

A Go command (--recipe go) may name the Go release that builds it and the
platforms it is built for, each its own label (stringer-linux-arm64,
stringer-windows-amd64.exe):
  lantern claim sign --key maintainer.key --recipe go \
    --source golang.org/x/tools/cmd/stringer@v0.30.0 --source-digest sha256:<hex> --go-sum h1:... \
    --go 1.23.4 --platform linux/amd64,linux/arm64,windows/amd64`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			key := f.String("key", os.Getenv("LANTERN_KEY"), "private key `FILE` (default $LANTERN_KEY)")
			var src sourceFlags
			src.register(f)
			fetch := f.String("fetch", "", "`URL` the source archive can be downloaded from")
			recipe := f.String("recipe", "", "the `RECIPE` that rebuilds it: go, generic")
			build := f.String("build", "", "the generic recipe's build spec, a JSON `FILE` (see above)")
			var gob goBuildFlags
			gob.register(f)
			post := f.String("post", "", "post the signed claim to the scheduler at `URL` (such as http://127.0.0.1:8080) and print its job")
			arts := artefactFlag{}
			f.Var(arts, "artefact", "a published artefact, `LABEL=sha256:<hex>` or LABEL=FILE (repeat for more)")
			out := f.String("o", "", "write the envelope to `FILE` (default standard output, unless --bundle is given)")
			bundleOut := f.String("bundle", "", "write the claim as a Sigstore bundle v0.3 (cosign v3's format) to `FILE`; with -o, the envelope too")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("claim sign takes no arguments, got %q", args)
				}
				s, err := src.parse()
				if err != nil {
					return err
				}
				c := &lantern.SourceClaim{Source: s, Fetch: *fetch, Recipe: *recipe, Time: time.Now().UTC().Truncate(time.Second)}
				if len(arts) > 0 {
					c.Artefacts = arts
				}
				if c.Go, err = gob.parse(); err != nil {
					return err
				}
				if *build != "" {
					if c.Build, err = readBuildSpec(*build); err != nil {
						return usagef("--build %s: %v", *build, err)
					}
				}
				if err := c.Validate(); err != nil {
					return usagef("%v", err)
				}
				k, err := loadPrivate(io, *key)
				if err != nil {
					return err
				}
				if *post == "" {
					return signAndWrite(io, c, k, *out, *bundleOut)
				}
				b, err := signClaim(io, c, k, *out, *bundleOut)
				if err != nil {
					return err
				}
				job, dup, err := postClaim(ctx, *post, b)
				if err != nil {
					return err
				}
				if dup {
					fmt.Fprintf(io.out, "%s: already claimed; job %s\n", s, job)
				} else {
					fmt.Fprintf(io.out, "%s: claim accepted; job %s\n", s, job)
				}
				return nil
			}
		},
	}
}

func attestSignCommand() command {
	return command{
		name:    "attest sign",
		args:    "ARTEFACT",
		summary: "sign a rebuild attestation for an artefact you built",
		long: `Attest sign writes a signed rebuild attestation for ARTEFACT: "the holder of
this key built NAME@VERSION (source S) and got LABEL with this sha256". It is
the same SLSA Provenance v1 attestation a Lantern worker makes, so a
maintainer's CI can sign its own release build and stand beside the farm's
builders. With --bundle it is also written as a Sigstore bundle v0.3, the
format cosign v3 writes and reads. The cosign CLI verifies either:

  cosign verify-blob-attestation --key KEY.pub --type https://slsa.dev/provenance/v1 \
    --insecure-ignore-tlog --bundle BUNDLE ARTEFACT          (cosign v3)
  cosign verify-blob-attestation --key KEY.pub --type https://slsa.dev/provenance/v1 \
    --insecure-ignore-tlog --signature ENVELOPE ARTEFACT     (cosign v2)

Example:
  lantern attest sign --key ci.key --source example.org/hello@v1.2.0 \
    --source-digest sha256:2c26...  --label hello-linux-amd64 \
    -o hello.att.json --bundle hello.sigstore.json dist/hello`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			key := f.String("key", os.Getenv("LANTERN_KEY"), "private key `FILE` (default $LANTERN_KEY)")
			var src sourceFlags
			src.register(f)
			label := f.String("label", "", "the artefact's `LABEL`, such as hello-linux-amd64")
			recipe := f.String("recipe", "", "the recipe or build script `FILE` that was followed; its digest is recorded")
			buildType := f.String("build-type", attest.BuildTypeMaintainer, "`URI` naming how it was built")
			logFile := f.String("log", "", "the build log `FILE`; its digest is recorded")
			started := f.String("started", "", "when the build started, `RFC3339` (default: not recorded)")
			out := f.String("o", "", "write the envelope to `FILE` (default standard output, unless --bundle is given)")
			bundleOut := f.String("bundle", "", "write the attestation as a Sigstore bundle v0.3 (cosign v3's format) to `FILE`; with -o, the envelope too")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("attest sign takes one ARTEFACT, the file that was built; got %d arguments", len(args))
				}
				s, err := src.parse()
				if err != nil {
					return err
				}
				if *label == "" {
					return usagef("--label is required: the name of the artefact, such as hello-linux-amd64")
				}
				output, _, err := lantern.DigestFile(args[0])
				if err != nil {
					return fmt.Errorf("artefact: %w", err)
				}
				r := &lantern.Rebuild{
					Source:   s,
					Label:    *label,
					Output:   output,
					Recipe:   lantern.Recipe{BuildType: *buildType},
					Finished: time.Now().UTC().Truncate(time.Second),
				}
				if *recipe != "" {
					if r.Recipe.Digest, _, err = lantern.DigestFile(*recipe); err != nil {
						return fmt.Errorf("--recipe: %w", err)
					}
				}
				if *logFile != "" {
					if r.Log, _, err = lantern.DigestFile(*logFile); err != nil {
						return fmt.Errorf("--log: %w", err)
					}
				}
				if *started != "" {
					if r.Started, err = time.Parse(time.RFC3339, *started); err != nil {
						return usagef("--started %q: want a time such as 2026-11-25T10:00:00Z", *started)
					}
				}
				k, err := loadPrivate(io, *key)
				if err != nil {
					return err
				}
				r.Builder = k.ID()
				if err := r.Validate(); err != nil {
					return usagef("%v", err)
				}
				return signAndWrite(io, r, k, *out, *bundleOut)
			}
		},
	}
}

// signAndWrite signs c and writes the envelope to out (standard output when
// empty, unless bundleOut is given) and the bundle to bundleOut.
func signAndWrite(io *stdio, c lantern.Claim, k *keys.Private, out, bundleOut string) error {
	env, err := attest.Sign(c, k)
	if err != nil {
		return err
	}
	if bundleOut != "" {
		if err := writeBundle(io, env, k, bundleOut); err != nil {
			return err
		}
		if out == "" {
			return nil
		}
	}
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return writeOutput(io, out, append(b, '\n'))
}

// signClaim signs c to post it: it returns the envelope's JSON, the bytes
// to post (the claim's id is their digest), after writing them, with a line
// end, to out and the bundle to bundleOut, where given.
func signClaim(io *stdio, c lantern.Claim, k *keys.Private, out, bundleOut string) ([]byte, error) {
	env, err := attest.Sign(c, k)
	if err != nil {
		return nil, err
	}
	if bundleOut != "" {
		if err := writeBundle(io, env, k, bundleOut); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if out != "" {
		if err := writeOutput(io, out, append(b, '\n')); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// writeBundle writes env as a Sigstore bundle with k's key hint, in cosign's
// form.
func writeBundle(io *stdio, env *dsse.Envelope, k *keys.Private, path string) error {
	b, err := bundle.New(env, bundle.KeyHint(k.ID()))
	if err != nil {
		return err
	}
	return writeOutput(io, path, append(b, '\n'))
}

func claimVerifyCommand() command {
	c := verifyCommand("claim verify")
	c.summary = "verify a signed claim (the same check as attest verify)"
	return c
}

func attestVerifyCommand() command {
	return verifyCommand("attest verify")
}

func verifyCommand(name string) command {
	return command{
		name:    name,
		args:    "ENVELOPE [ARTEFACT]",
		summary: "verify a signed attestation or claim, and optionally its artefact",
		long: `Verify checks that ENVELOPE (a DSSE envelope, from Lantern or from
'cosign attest-blob', bare or inside a Sigstore bundle as 'cosign attest-blob
--bundle' and 'lantern attest sign --bundle' write it) is signed by the public key, that its statement is a
well-formed Lantern claim, and — given ARTEFACT — that the artefact's sha256
is the attested subject. It prints what was verified; it exits 1 if any check
fails, naming the check.

Example:
  lantern attest verify --key builder.pub hello.att.json dist/hello`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			key := f.String("key", "", "the signer's public key `FILE`")
			asJSON := f.Bool("json", false, "print the verified claim as JSON")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) < 1 || len(args) > 2 {
					return usagef("%s takes ENVELOPE and an optional ARTEFACT; got %d arguments", name, len(args))
				}
				pub, err := loadPublic(*key)
				if err != nil {
					return err
				}
				env, err := readEnvelopeFile(args[0])
				if err != nil {
					return err
				}
				v, err := attest.Verify(env, pub)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				if len(args) == 2 {
					d, _, err := lantern.DigestFile(args[1])
					if err != nil {
						return fmt.Errorf("artefact: %w", err)
					}
					if !v.Statement.HasSubject(d) {
						return fmt.Errorf("%s: %w: %s is %s; the attestation is about %s", args[0], attest.ErrNotSubject, args[1], d, subjects(v.Statement))
					}
				}
				if *asJSON {
					b, err := json.MarshalIndent(struct {
						Kind   lantern.Kind   `json:"kind"`
						Signer lantern.Digest `json:"signer"`
						Claim  lantern.Claim  `json:"claim"`
					}{v.Claim.Kind(), v.Signer, v.Claim}, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(io.out, "%s\n", b)
					return err
				}
				fmt.Fprintf(io.out, "Verified: %s\n", describe(v))
				return nil
			}
		},
	}
}

// readEnvelopeFile reads a DSSE envelope, bare or in a Sigstore bundle,
// from a file of at most bundle.MaxSize bytes.
func readEnvelopeFile(path string) (*dsse.Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read envelope: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, bundle.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read envelope %s: %w", path, err)
	}
	if len(b) > bundle.MaxSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, bundle.ErrTooLarge, bundle.MaxSize)
	}
	env, err := attest.ReadEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

func subjects(st *attest.Statement) string {
	var s []string
	for _, sub := range st.Subject {
		d, _ := sub.SHA256()
		s = append(s, fmt.Sprintf("%s %s", sub.Name, d))
	}
	return strings.Join(s, ", ")
}

// describe says in one line what a verified claim states.
func describe(v *attest.Verified) string {
	switch c := v.Claim.(type) {
	case *lantern.Rebuild:
		return fmt.Sprintf("builder %s built %s (source %s) to %s %s", v.Signer, c.Source, c.Source.Digest, c.Label, c.Output)
	case *lantern.RebuildFailure:
		return fmt.Sprintf("builder %s could not rebuild %s (source %s) at %s: %s", v.Signer, c.Source, c.Source.Digest, c.Stage, c.Reason)
	case *lantern.SourceClaim:
		s := fmt.Sprintf("key %s claims %s is source %s", v.Signer, c.Source, c.Source.Digest)
		labels := make([]string, 0, len(c.Artefacts))
		for l := range c.Artefacts {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			s += fmt.Sprintf("; published %s %s", l, c.Artefacts[l])
		}
		return s
	case *lantern.Trust:
		verb := "is"
		if c.Revoked {
			verb = "is no longer"
		}
		what := "a trusted builder"
		if c.Relation == lantern.RelationAuthor {
			what = "an author of " + c.Name
		}
		return fmt.Sprintf("key %s says key %s %s %s", v.Signer, c.Key, verb, what)
	case *lantern.Yank:
		return fmt.Sprintf("key %s says %s is NOT source %s: %s", v.Signer, c.Source, c.Source.Digest, c.Reason)
	}
	return string(v.Claim.Kind())
}

// readBuildSpec reads a build spec file strictly: an unknown field is
// a mistake to report, not to drop.
func readBuildSpec(file string) (*lantern.BuildSpec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s lantern.BuildSpec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("want a JSON object with image, commands, outputs (and optionally env, sourceDate): %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the spec's object")
	}
	return &s, nil
}
