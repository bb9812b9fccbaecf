package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/vsa"
	"github.com/lanternfarm/lantern/verify"
)

// vsaFlags are lantern verify's flags for a signed SLSA Verification
// Summary Attestation of its decision.
type vsaFlags struct {
	keyFile, out, resource string
	key                    *keys.Private
}

const vsaHelp = `
A signed summary of the decision, for others who trust this machine's key:
  --vsa KEY              also write a SLSA Verification Summary Attestation v1, signed with the
                         private KEY (lantern keygen or cosign generate-key-pair; its password from
                         LANTERN_PASSWORD): the verifier's key id, the policy's digest, the signed
                         evidence the decision rests on, PASSED or FAILED. It is written whatever
                         the result, and the exit code stays the decision's. Check it with
                           cosign verify-blob-attestation --key KEY.pub --insecure-ignore-tlog \
                             --type https://slsa.dev/verification_summary/v1 --signature VSA ARTEFACT
  --vsa-out FILE         where (default: ARTEFACT's file name, or the digest's first 16 hex
                         digits, then .vsa.intoto.json, in the current directory)
  --vsa-resource URI     its resourceUri, such as a package URL (default: ARTEFACT's file name,
                         or its digest)
`

func (v *vsaFlags) register(f *flag.FlagSet) {
	f.StringVar(&v.keyFile, "vsa", "", "also write a signed SLSA Verification Summary Attestation of the decision, signed with the private key `KEY`")
	f.StringVar(&v.out, "vsa-out", "", "write the VSA to `FILE` (default ARTEFACT's file name or the digest's first 16 hex digits, then .vsa.intoto.json)")
	f.StringVar(&v.resource, "vsa-resource", "", "the VSA's resourceUri, the `URI` of what was verified (default ARTEFACT's file name or digest)")
}

// load reads the verifier's key, if a VSA is asked for: before any evidence
// is fetched, so that a wrong password costs nothing.
func (v *vsaFlags) load(io *stdio) error {
	if v.keyFile == "" {
		if v.out != "" || v.resource != "" {
			return usagef("--vsa-out and --vsa-resource say how to write a VSA: give --vsa KEY too")
		}
		return nil
	}
	if v.out == "-" {
		return usagef("--vsa-out -: the decision is printed on standard output; give the VSA a file")
	}
	k, err := loadPrivate(io, v.keyFile)
	if err != nil {
		return fmt.Errorf("--vsa: %w", err)
	}
	v.key = k
	return nil
}

// write signs the VSA of d and writes it, if one is asked for. arg is
// ARTEFACT as given.
func (v *vsaFlags) write(io *stdio, d *verify.Decision, arg string) error {
	if v.key == nil {
		return nil
	}
	name, out := filepath.Base(arg), filepath.Base(arg)+".vsa.intoto.json"
	if strings.HasPrefix(arg, lantern.DigestPrefix) {
		name, out = d.Artefact.String(), d.Artefact.Hex()[:16]+".vsa.intoto.json"
	}
	if v.out != "" {
		out = v.out
	}
	env, err := vsa.Sign(d, vsa.Options{Name: name, ResourceURI: v.resource}, v.key)
	if err != nil {
		return fmt.Errorf("--vsa: %w", err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("--vsa: %w", err)
	}
	if err := writeFile(out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--vsa: write %s: %w", out, err)
	}
	result := vsa.Failed
	if d.Result == verify.Verified {
		result = vsa.Passed
	}
	fmt.Fprintf(io.err, "lantern verify: wrote the verification summary (%s) of %s, signed by %s, to %s\n", result, d.Artefact, v.key.ID(), out)
	return nil
}
