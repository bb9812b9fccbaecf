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

// Verdict is the verdict on one (source, label) with its evidence: the
// builders grouped by the output they got, largest group first. The API, the
// dashboard and `lantern verify` all read this one struct.
type Verdict struct {
	Source    Source    `json:"source"`
	Label     string    `json:"label"`
	Status    Status    `json:"status"`
	Threshold int       `json:"threshold"`
	Published Digest    `json:"published,omitzero"`
	Groups    []Group   `json:"groups"`
	Failures  []Outcome `json:"failures,omitempty"`
}

// Decide computes the verdict on (source, label) from the builders'
// outcomes. published is the artefact the project published under label, or
// zero; threshold is how many distinct builders must agree. A builder counts
// once: where it reported more than once, its latest outcome stands.
func Decide(source Source, label string, published Digest, threshold int, outcomes []Outcome) Verdict {
	if threshold < 1 {
		threshold = 1
	}
	v := Verdict{Source: source, Label: label, Threshold: threshold, Published: published, Groups: []Group{}}
	latest := map[Digest]Outcome{}
	for _, o := range outcomes {
		if prev, ok := latest[o.Builder]; !ok || o.Finished.After(prev.Finished) {
			latest[o.Builder] = o
		}
	}
	byOutput := map[Digest]int{} // output → index in v.Groups
	for _, b := range sortedKeys(latest) {
		o := latest[b]
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
