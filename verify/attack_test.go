package verify_test

import (
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
)

// TestOneRebuilderCountsOnce: a rebuilderd instance signs each link with
// its worker's key and its own; a policy that trusts both keys of one
// rebuilder trusts one builder. An attacker who hands over two links of
// one package from that rebuilder (one signed by the worker and the
// instance, one by the instance alone, or by another worker and the
// instance) must not make it count twice, whatever order the policy names
// the keys in.
func TestOneRebuilderCountsOnce(t *testing.T) {
	p := newParties(t)
	worker, worker2, instance := p.e1, newEdKey(t, "worker2.pub"), p.e2
	const pkg = "tool-1.0-1-any.pkg.tar.zst"
	prods := map[string]lantern.Digest{pkg: p.art}
	for _, tc := range []struct {
		name   string
		policy verify.Policy
		pieces []verify.Piece
	}{
		{"worker+instance, then instance", policy(2, worker.key, instance.key),
			[]verify.Piece{link(t, "w+i", prods, worker, instance), link(t, "i", prods, instance)}},
		{"instance, then worker+instance", policy(2, worker.key, instance.key),
			[]verify.Piece{link(t, "i", prods, instance), link(t, "w+i", prods, worker, instance)}},
		{"two workers, each with the instance", policy(2, worker.key, worker2.key, instance.key),
			[]verify.Piece{link(t, "w+i", prods, worker, instance), link(t, "w2+i", prods, worker2, instance)}},
		{"worker alone, then worker+instance", policy(2, instance.key, worker.key),
			[]verify.Piece{link(t, "w", prods, worker), link(t, "w+i", prods, worker, instance)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := verify.Decide(&tc.policy, p.art, tc.pieces, now)
			if d.Result != verify.NotVerified || len(d.Agreeing) != 1 {
				t.Errorf("Decide() = %s with %d agreeing %q, want %s with 1: the keys that sign one link are one rebuilder\n%s", d.Result, len(d.Agreeing), d.Agreeing, verify.NotVerified, explain(d))
			}
		})
	}
}
