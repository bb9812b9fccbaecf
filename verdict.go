package lantern

import (
	"slices"
	"time"
)

// Status is the verdict on one (source, label).
type Status string

// The statuses a verdict can have.
const (
	// StatusReproduced: at least the threshold of distinct builders got the
	// same output, and it is the published artefact where one was claimed.
	StatusReproduced Status = "reproduced"
	// StatusMismatch: builders disagree, or differ from the published artefact.
	StatusMismatch Status = "mismatch"
	// StatusPending: fewer builders than the threshold have agreed so far, and
	// none disagrees.
	StatusPending Status = "pending"
	// StatusFailed: builders answered, and every one of them failed to build.
	StatusFailed Status = "failed"
	// StatusConflict: claims give the source's name@version more than one
	// source archive ("more than one checksum", as the Go checksum database
	// says). The builders' groups still show what each source rebuilt to.
	StatusConflict Status = "conflict"
)

// Outcome is what one builder reported for one (source, label): an output,
// or a failure.
type Outcome struct {
	Builder Digest `json:"builder"`
	// Output is the digest the builder got; zero for a failure.
	Output Digest `json:"output,omitzero"`
	// Failure is the failed rebuild's stage and reason, when it failed.
	Stage  string `json:"stage,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Attestation is the digest of the signed envelope that reported it.
	Attestation Digest    `json:"attestation"`
	Finished    time.Time `json:"finished"`
	// Revoked says that the builder was removed from the farm: its outcome
	// is shown, and does not count.
	Revoked bool `json:"revoked,omitempty"`
}

// Failed reports whether the outcome is a failed rebuild.
func (o Outcome) Failed() bool { return o.Output.IsZero() }

// Group is the builders that got one output.
type Group struct {
	Output   Digest   `json:"output"`
	Builders []Digest `json:"builders"`
	// Published reports whether Output is the artefact the project published.
	Published bool `json:"published,omitempty"`
}

// Verdict is the verdict on what was built — one job (a source, a recipe
// and its spec) and one label — with its evidence: the builders grouped by
// the output they got, largest group first. Where claims of the job publish
// different artefacts under the label, each published artefact has a
// verdict of its own, naming the claims (and their signers) that publish
// it: one claimer cannot change the comparison with another's. The API, the
// dashboard and `lantern verify` all read this one struct.
type Verdict struct {
	Source Source `json:"source"`
	Label  string `json:"label"`
	// Job is the id of the job whose rebuilds are compared; Recipe its
	// recipe and Build its build spec's digest (generic recipe).
	Job       string `json:"job,omitempty"`
	Recipe    string `json:"recipe,omitempty"`
	Build     Digest `json:"build,omitzero"`
	Status    Status `json:"status"`
	Threshold int    `json:"threshold"`
	// Published is the artefact the Claims publish under Label, or zero.
	Published Digest `json:"published,omitzero"`
	// Claims are the source claims compared here: those of the job that
	// publish Published (or, for a zero Published, nothing) under Label.
	Claims   []ClaimRef `json:"claims,omitempty"`
	Groups   []Group    `json:"groups"`
	Failures []Outcome  `json:"failures,omitempty"`
	// Revoked are the outcomes of builders removed from the farm.
	Revoked []Outcome `json:"revoked,omitempty"`
	// Conflicts are the other source archives that claims give the same
	// name@version; with any, Status is StatusConflict.
	Conflicts []Digest `json:"conflicts,omitempty"`
}

// ClaimRef names a source claim by its envelope's digest and its signer.
type ClaimRef struct {
	Envelope Digest `json:"envelope"`
	Signer   Digest `json:"signer"`
}

// Decide computes the verdict on (source, label) from the builders'
// outcomes, in the order the farm received them. published is the artefact
// the project published under label, or zero; threshold is how many distinct
// builders must agree. A builder counts once: where it reported more than
// once, the outcome received last stands — the farm's order, not the
// builder's clock, which a builder sets as it likes. A revoked builder's
// outcome is listed in Revoked and does not count.
func Decide(source Source, label string, published Digest, threshold int, outcomes []Outcome) Verdict {
	if threshold < 1 {
		threshold = 1
	}
	v := Verdict{Source: source, Label: label, Threshold: threshold, Published: published, Groups: []Group{}}
	latest := map[Digest]Outcome{}
	for _, o := range outcomes {
		latest[o.Builder] = o
	}
	byOutput := map[Digest]int{} // output → index in v.Groups
	for _, b := range sortedKeys(latest) {
		o := latest[b]
		if o.Revoked {
			v.Revoked = append(v.Revoked, o)
			continue
		}
		if o.Failed() {
			v.Failures = append(v.Failures, o)
			continue
		}
		i, ok := byOutput[o.Output]
		if !ok {
			i = len(v.Groups)
			byOutput[o.Output] = i
			v.Groups = append(v.Groups, Group{Output: o.Output, Published: !published.IsZero() && o.Output == published})
		}
		v.Groups[i].Builders = append(v.Groups[i].Builders, b)
	}
	slices.SortStableFunc(v.Groups, func(a, b Group) int {
		if len(a.Builders) != len(b.Builders) {
			return len(b.Builders) - len(a.Builders)
		}
		return compareDigests(a.Output, b.Output)
	})
	switch {
	case len(v.Groups) > 1:
		v.Status = StatusMismatch
	case len(v.Groups) == 1 && !published.IsZero() && !v.Groups[0].Published:
		v.Status = StatusMismatch
	case len(v.Groups) == 1 && len(v.Groups[0].Builders) >= threshold:
		v.Status = StatusReproduced
	case len(v.Groups) == 0 && len(v.Failures) > 0:
		v.Status = StatusFailed
	default:
		v.Status = StatusPending
	}
	return v
}

func sortedKeys(m map[Digest]Outcome) []Digest {
	keys := make([]Digest, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareDigests)
	return keys
}

func compareDigests(a, b Digest) int {
	sa, sb := a.Sum(), b.Sum()
	return slices.Compare(sa[:], sb[:])
}
