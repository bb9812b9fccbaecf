package dashboard

import (
	"fmt"
	"strings"

	"github.com/lanternfarm/lantern"
)

// What a verdict means to a reader: which group of builders is the one
// the others are measured against, and a short summary for badges.

// reference returns the index in v.Groups of the group the others are
// measured against, or -1 if there is none: the group with the published
// artefact where the project published one (-1 if no builder got it); else
// the largest group, if it is larger than every other.
func reference(v lantern.Verdict) int {
	if !v.Published.IsZero() {
		for i, g := range v.Groups {
			if g.Output == v.Published {
				return i
			}
		}
		return -1
	}
	switch {
	case len(v.Groups) == 0:
		return -1
	case len(v.Groups) == 1 || len(v.Groups[0].Builders) > len(v.Groups[1].Builders):
		return 0 // Groups are largest first
	}
	return -1
}

// agreeing returns how many builders are in v's reference group.
func agreeing(v lantern.Verdict) int {
	if i := reference(v); i >= 0 {
		return len(v.Groups[i].Builders)
	}
	return 0
}

// summary is what a badge says of v: "reproduced 2/2" (builders that agree
// of the threshold), "pending 1/2", "mismatch 2:1" (the sizes of the
// groups), "mismatch 0/2" (no builder got the published artefact), "failed
// 2" (builders that failed).
func summary(v lantern.Verdict) string {
	switch v.Status {
	case lantern.StatusMismatch:
		if !v.Published.IsZero() {
			return fmt.Sprintf("mismatch %d/%d", agreeing(v), v.Threshold)
		}
		sizes := make([]string, 0, len(v.Groups))
		for _, g := range v.Groups {
			sizes = append(sizes, fmt.Sprint(len(g.Builders)))
		}
		return "mismatch " + strings.Join(sizes, ":")
	case lantern.StatusFailed:
		return fmt.Sprintf("failed %d", len(v.Failures))
	}
	return fmt.Sprintf("%s %d/%d", v.Status, agreeing(v), v.Threshold)
}

// role says what group i of v is, in words.
func role(v lantern.Verdict, i int) string {
	ref := reference(v)
	switch {
	case i == ref && v.Status == lantern.StatusReproduced:
		return "agreeing group"
	case i == ref && v.Status == lantern.StatusPending:
		return "agreeing so far"
	case i == ref && !v.Published.IsZero():
		return "matches the published artefact"
	case i == ref:
		return "the majority"
	case !v.Published.IsZero():
		return "differs from the published artefact"
	}
	return "disagreeing group"
}

// overall is the status of a source with verdicts vs on its labels: the
// worst of them (conflict, mismatch, then failed, then pending), pending if
// there is none yet.
func overall(vs []lantern.Verdict) lantern.Status {
	if len(vs) == 0 {
		return lantern.StatusPending
	}
	rank := map[lantern.Status]int{lantern.StatusReproduced: 0, lantern.StatusPending: 1, lantern.StatusFailed: 2, lantern.StatusMismatch: 3, lantern.StatusConflict: 4}
	worst := lantern.StatusReproduced
	for _, v := range vs {
		if rank[v.Status] > rank[worst] {
			worst = v.Status
		}
	}
	return worst
}

// builderOutcome is how one builder's output compares with the others' in
// a verdict.
type builderOutcome string

const (
	outcomeAgrees    builderOutcome = "agrees"
	outcomeDisagrees builderOutcome = "disagrees"
	outcomeAlone     builderOutcome = "alone" // no other builder has an output yet
	outcomeFailed    builderOutcome = "failed"
	outcomeUnknown   builderOutcome = "" // the verdict does not name it
)

// outcomeOf says how builder's output compares in v: it agrees when it is
// in the reference group, disagrees when another builder got other bytes
// (or, with a published artefact, when its bytes are not that), and is
// alone while no other builder has an output.
func outcomeOf(v lantern.Verdict, builder lantern.Digest) builderOutcome {
	for _, f := range v.Failures {
		if f.Builder == builder {
			return outcomeFailed
		}
	}
	total, mine := 0, -1
	for i, g := range v.Groups {
		total += len(g.Builders)
		for _, b := range g.Builders {
			if b == builder {
				mine = i
			}
		}
	}
	switch {
	case mine < 0:
		return outcomeUnknown
	case total < 2:
		return outcomeAlone
	case mine == reference(v):
		return outcomeAgrees
	}
	return outcomeDisagrees
}

// agreement counts how a builder's rebuilds compared with the others'.
type agreement struct {
	// Window is how many of its latest attestations were counted.
	Window int
	// Rebuilt and Failed split them by kind.
	Rebuilt, Failed int
	// Compared are the rebuilds some other builder has an output for; of
	// those, Agreed were in the reference group. Alone had nobody to
	// compare with yet.
	Compared, Agreed, Alone int
}

// Percent is the share of the compared rebuilds that agreed, rounded down.
func (a agreement) Percent() int {
	if a.Compared == 0 {
		return 0
	}
	return 100 * a.Agreed / a.Compared
}
