package verify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
)

// weighing is one decision in progress, over items whose signatures are
// checked.
type weighing struct {
	p        *Policy
	d        *Decision
	artefact lantern.Digest
	now      time.Time

	revokedBuilder map[string]string // key id → the revocation's origin
	// revokedAuthor holds, by key id, the names (or NAME/... prefixes) it
	// is no longer an author of, each as an Author, with the revocation's
	// origin.
	revokedAuthor map[string][]revokedAuthor
	agree         []int // items of trusted rebuilds to exactly the artefact
}

func (w *weighing) items() []Item { return w.d.Evidence }

// revokedAuthor is a revocation of a key as an author of a name, or of every
// name under a NAME/... prefix, as a policy's authors are named.
type revokedAuthor struct {
	name   Author
	origin string
}

// revocations collects the revocations the policy honours and marks what
// they revoke. A revocation takes away what the revoked key's evidence
// would add — its agreement, its claims' authority over a source — and
// nothing of what it would take away: a revoked key's contradiction, yank
// or conflicting claim still holds. So no revocation, whoever signed it and
// whenever, can hide anything; it can only make less verified, and a client
// that wants none of a key's word removes it from its policy. That is why
// every revocation signed by a key the policy names applies, whatever order
// they came in and whether its signer is revoked too.
func (w *weighing) revocations() {
	w.revokedBuilder, w.revokedAuthor = map[string]string{}, map[string][]revokedAuthor{}
	for i := range w.items() {
		it := &w.d.Evidence[i]
		t, ok := it.claim.(*lantern.Trust)
		if !ok || !it.trusted {
			continue
		}
		it.Reason = ReasonRevocation
		if t.Relation == lantern.RelationAuthor {
			k := t.Key.String()
			w.revokedAuthor[k] = append(w.revokedAuthor[k], revokedAuthor{Author{Name: t.Name}, it.Origin})
			it.Why = fmt.Sprintf("revocation by %s: key %s is no longer an author of %s", it.Signer, t.Key, t.Name)
		} else {
			w.revokedBuilder[t.Key.String()] = it.Origin
			it.Why = fmt.Sprintf("revocation by %s: key %s is no longer a trusted builder", it.Signer, t.Key)
		}
	}
	for i := range w.items() {
		it := &w.d.Evidence[i]
		if !it.trusted || it.Reason == ReasonRevocation {
			continue
		}
		switch it.claim.(type) {
		case *lantern.SourceClaim, *lantern.Yank:
			for _, r := range w.revokedAuthor[it.Signer] {
				if r.name.authors(it.source.Name) {
					it.revoked = fmt.Sprintf("%s is no longer an author of %s (%s)", it.Signer, r.name.Name, r.origin)
					break
				}
			}
		default:
			if o, ok := w.revokedBuilder[it.Signer]; ok {
				it.revoked = fmt.Sprintf("builder %s is no longer trusted (%s)", it.Signer, o)
			}
		}
	}
}

// rebuilds sorts the trusted rebuilds: to exactly the artefact, to other
// bytes, failed, too old.
func (w *weighing) rebuilds() {
	for i := range w.items() {
		it := &w.d.Evidence[i]
		if !it.trusted {
			continue
		}
		switch c := it.claim.(type) {
		case *lantern.RebuildFailure:
			it.Reason, it.Why = ReasonFailed, fmt.Sprintf("builder %s could not rebuild %s: %s: %s", it.Signer, c.Source, c.Stage, c.Reason)
			continue
		case *lantern.SourceClaim:
			if it.revoked != "" {
				it.Reason, it.Why = ReasonRevoked, fmt.Sprintf("revoked: %s; its claim that %s is source %s authors nothing, and conflicts with any other", it.revoked, c.Source, c.Source.Digest)
				continue
			}
			it.Reason, it.Why = ReasonClaim, fmt.Sprintf("%s claims %s is source %s", it.Signer, c.Source, c.Source.Digest)
			continue
		case *lantern.Yank:
			it.Reason, it.Why = ReasonIgnored, fmt.Sprintf("%s yanks %s source %s, which no trusted builder rebuilt to this artefact", it.Signer, c.Source, c.Source.Digest)
			continue
		case *lantern.Rebuild, nil:
		default:
			continue
		}
		if w.p.MaxAge > 0 {
			if it.products != nil {
				it.trusted, it.Reason, it.Why = false, ReasonTooOld, fmt.Sprintf("too old: an in-toto link records no time, and the policy counts nothing older than %s", w.p.MaxAge)
				continue
			}
			if age := w.now.Sub(it.finished); age > w.p.MaxAge {
				it.trusted, it.Reason, it.Why = false, ReasonTooOld, fmt.Sprintf("too old: built %s, %s ago; the policy counts nothing older than %s", it.finished.UTC().Format(time.RFC3339), age.Round(time.Hour), w.p.MaxAge)
				continue
			}
		}
		if it.products != nil {
			names := slices.Sorted(maps.Keys(it.products))
			for _, n := range names {
				if it.products[n] == w.artefact {
					it.subject, it.output = "product "+n, w.artefact
					break
				}
			}
			if it.subject == "" {
				it.subject, it.output = "product "+strings.Join(names, ", "), lantern.Digest{}
			}
		}
		if it.output != w.artefact {
			it.Reason, it.Why = ReasonOtherArtefact, "another artefact: "+it.describe()
			continue
		}
		if it.revoked != "" {
			it.Reason, it.Why = ReasonRevoked, "revoked: "+it.revoked+"; its agreement does not count: "+it.describe()
			continue
		}
		w.agree = append(w.agree, i)
	}
}

func (it *Item) describe() string {
	if it.products != nil {
		names := slices.Sorted(maps.Keys(it.products))
		parts := make([]string, 0, len(names))
		for _, n := range names {
			parts = append(parts, n+" is "+it.products[n].String())
		}
		return "rebuilderd link: " + strings.Join(parts, ", ")
	}
	return "rebuilt " + it.subject + " to " + it.output.String()
}

// authored applies the authors: where a source's name has authors in the
// policy, a rebuild counts only from a source one of them claimed, and any
// other source they gave that name@version, or a yank of the rebuilt source,
// contradicts. Without authors, trusted rebuilds of one name@version from
// two sources are a conflict too.
func (w *weighing) authored() {
	type nv struct{ name, version string }
	// claimed: by trusted authors, digest → origin; authorizing: by those
	// not revoked, whose claims alone make a source count.
	claimed := map[nv]map[lantern.Digest]string{}
	authorizing := map[nv]map[lantern.Digest]bool{}
	for i := range w.items() {
		it := &w.d.Evidence[i]
		if c, ok := it.claim.(*lantern.SourceClaim); ok && it.trusted {
			k := nv{c.Source.Name, c.Source.Version}
			if claimed[k] == nil {
				claimed[k], authorizing[k] = map[lantern.Digest]string{}, map[lantern.Digest]bool{}
			}
			claimed[k][c.Source.Digest] = it.Origin
			if it.revoked == "" {
				authorizing[k][c.Source.Digest] = true
			}
		}
	}
	// The sources to ask a farm about are those of every trusted rebuild to
	// the artefact, authored or not yet: their claims are what authors them.
	sources := map[string]bool{}
	for _, i := range w.agree {
		if it := &w.d.Evidence[i]; it.products == nil {
			sources[it.source.String()] = true
		}
	}
	w.d.sources = slices.Sorted(maps.Keys(sources))
	rebuilt := map[nv]map[lantern.Digest]bool{}
	kept := w.agree[:0]
	for _, i := range w.agree {
		it := &w.d.Evidence[i]
		if it.products != nil {
			kept = append(kept, i)
			continue
		}
		k := nv{it.source.Name, it.source.Version}
		if len(authorKeys(w.p, it.source.Name)) > 0 {
			if !authorizing[k][it.source.Digest] {
				if _, own := claimed[k][it.source.Digest]; len(claimed[k]) > 1 || len(claimed[k]) == 1 && !own {
					w.contradict(fmt.Sprintf("source conflict: %s rebuilt %s from %s, but the trusted authors claim %s", it.Signer, it.source, it.source.Digest, strings.Join(digests(claimed[k]), ", ")))
					it.Reason, it.Why = ReasonConflict, fmt.Sprintf("conflict: rebuilt from %s, a source of %s no trusted author claimed (they claim %s)", it.source.Digest, it.source, strings.Join(digests(claimed[k]), ", "))
				} else {
					it.Reason, it.Why = ReasonNotAuthored, fmt.Sprintf("not authored: rebuilt %s, but no source claim of it by an author the policy names for %s (and has not revoked) is in the evidence", it.subject, it.source.Name)
				}
				continue
			}
		}
		if rebuilt[k] == nil {
			rebuilt[k] = map[lantern.Digest]bool{}
		}
		rebuilt[k][it.source.Digest] = true
		kept = append(kept, i)
	}
	w.agree = kept
	for k, ds := range rebuilt {
		all := maps.Clone(ds)
		for d := range claimed[k] {
			all[d] = true
		}
		if len(all) > 1 {
			w.contradict(fmt.Sprintf("source conflict: %s@%s is given %d sources: %s", k.name, k.version, len(all), strings.Join(slices.Sorted(func(yield func(string) bool) {
				for d := range all {
					if !yield(d.String()) {
						return
					}
				}
			}), ", ")))
		}
	}
	for i := range w.items() {
		it := &w.d.Evidence[i]
		y, ok := it.claim.(*lantern.Yank)
		if !ok || !it.trusted {
			continue
		}
		if rebuilt[nv{y.Source.Name, y.Source.Version}][y.Source.Digest] {
			it.Reason = ReasonYanked
			it.Why = fmt.Sprintf("yank by %s: %s is NOT source %s: %s", it.Signer, y.Source, y.Source.Digest, y.Reason)
			if it.revoked != "" {
				it.Why += " (its signer is revoked, which hides nothing: remove the key from your policy to ignore it)"
			}
			w.contradict(fmt.Sprintf("yanked: %s says %s is not source %s (%s): %s", it.Signer, y.Source, y.Source.Digest, it.Origin, y.Reason))
		}
	}
}

func digests(m map[lantern.Digest]string) []string {
	out := make([]string, 0, len(m))
	for d := range m {
		out = append(out, d.String())
	}
	slices.Sort(out)
	return out
}

// contradictions finds trusted rebuilds of what was rebuilt to the artefact
// (the same source and label, or the same product) to other bytes.
func (w *weighing) contradictions() {
	subjects := map[string]bool{}
	for _, i := range w.agree {
		subjects[w.d.Evidence[i].subject] = true
	}
	for i := range w.items() {
		it := &w.d.Evidence[i]
		if !it.trusted || it.Reason != ReasonOtherArtefact {
			continue
		}
		if it.products != nil {
			for n, d := range it.products {
				if subjects["product "+n] && d != w.artefact {
					it.Reason, it.Why = ReasonContradicts, fmt.Sprintf("contradicts: trusted builder %s got %s for product %s", it.Signer, d, n)
					w.contradict(fmt.Sprintf("%s: trusted builder %s got %s for product %s", it.Origin, it.Signer, d, n))
					break
				}
			}
			continue
		}
		if subjects[it.subject] {
			it.Reason, it.Why = ReasonContradicts, fmt.Sprintf("contradicts: trusted builder %s rebuilt %s to %s", it.Signer, it.subject, it.output)
			if it.revoked != "" {
				it.Why += " (revoked: " + it.revoked + ", which hides nothing: remove the key from your policy to ignore it)"
			}
			w.contradict(fmt.Sprintf("%s: trusted builder %s rebuilt %s to %s", it.Origin, it.Signer, it.subject, it.output))
		}
	}
}

func (w *weighing) contradict(why string) {
	w.d.Contradictions = append(w.d.Contradictions, why)
}

// count counts each agreeing builder once, and decides. Keys that signed
// one in-toto link together are one rebuilder's (its worker's and its
// instance's), in every link: else two links of one package, one signed by
// the worker and the instance and one by the instance alone, would count
// one rebuilder twice.
func (w *weighing) count() {
	builder := w.rebuilders()
	seen := map[string]bool{}
	for _, i := range w.agree {
		it := &w.d.Evidence[i]
		name := w.keyName(it.Signer)
		if seen[builder(it.Signer)] {
			it.Reason, it.Why = ReasonCounted, "agrees, and builder "+name+" is counted already: "+it.describe()
			continue
		}
		seen[builder(it.Signer)] = true
		it.Counts, it.Reason, it.Why = true, ReasonAgrees, "trusted ("+name+") and agreeing: "+it.describe()
		w.d.Agreeing = append(w.d.Agreeing, it.Signer)
	}
	slices.Sort(w.d.Agreeing)
	for i := range w.items() {
		it := &w.d.Evidence[i]
		if it.Reason == "" {
			it.Reason, it.Why = ReasonIgnored, "signed by a trusted key, but says nothing about this artefact"
		}
	}
	// A threshold below 1, of a policy no one validated, verifies nothing.
	switch {
	case len(w.d.Contradictions) > 0:
		w.d.Result = Contradicted
	case w.p.Threshold >= 1 && len(w.d.Agreeing) >= w.p.Threshold:
		w.d.Result = Verified
	default:
		w.d.Result = NotVerified
	}
}

// rebuilders returns a function that names the rebuilder of a key: the
// same for all keys that signed one link together, in any link of the
// evidence (whether it counts or not: its signatures say whose keys they
// are), and the key itself for any other.
func (w *weighing) rebuilders() func(string) string {
	parent := map[string]string{}
	var find func(string) string
	find = func(k string) string {
		p, ok := parent[k]
		if !ok || p == k {
			return k
		}
		r := find(p)
		parent[k] = r
		return r
	}
	for _, it := range w.items() {
		for _, k := range it.cosigners[min(1, len(it.cosigners)):] {
			a, b := find(it.cosigners[0]), find(k)
			if a != b {
				parent[max(a, b)] = min(a, b)
			}
		}
	}
	return find
}

func (w *weighing) keyName(id string) string {
	for _, k := range w.p.Builders {
		if k.ID == id && k.Name != "" {
			return k.Name
		}
	}
	return id
}
