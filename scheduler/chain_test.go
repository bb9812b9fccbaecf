package scheduler_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
)

// genericClaim signs, as signer, a claim of name built by the generic
// recipe with a spec whose one command is command.
func genericClaim(t testing.TB, signer *keys.Private, name, command string) ([]byte, lantern.Job) {
	t.Helper()
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: "1.0", Digest: lantern.DigestOf([]byte(name + " tarball"))},
		Fetch:  "https://example.org/" + name + ".tar.gz",
		Recipe: lantern.RecipeGeneric,
		Build: &lantern.BuildSpec{
			Image:    "registry.example/builder@sha256:" + strings.Repeat("ab", 32),
			Commands: []string{command},
			Outputs:  map[string]string{"tool": "tool"},
		},
		Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	b := signed(t, signer, c)
	return b, lantern.JobFromClaim(c, b, signer.ID())
}

// TestAttestationMustAnswerItsJob: an attestation that names a real job but
// not what the job is — another recipe, another version of no recipe, another
// spec, a label nobody claimed, another source, another claim — is refused
// over the API (422, naming the field) and over NATS, and nothing of it is
// stored; the one that answers its job is accepted.
func TestAttestationMustAnswerItsJob(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	goClaim, goJob := sourceClaim(t, claimKey, "example.org/cmd/tool", lantern.Digest{})
	genClaim, genJob := genericClaim(t, claimKey, "example.org/generic", "cc -o $OUT/tool main.c")
	for _, c := range [][]byte{goClaim, genClaim} {
		if code := f.do("POST", "/api/v1/claims", c, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim = %d", code)
		}
	}
	for _, j := range []lantern.Job{goJob, genJob} {
		eventually(t, "job "+j.ID, func() bool { return f.do("GET", "/api/v1/jobs/"+j.ID, nil, nil) == http.StatusOK })
	}
	generic, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	goodGo := func() *lantern.Rebuild {
		return &lantern.Rebuild{
			Source: goJob.Source, Label: goLabel(goJob.Source.Name), Output: lantern.DigestOf([]byte("tool binary")),
			Recipe: goRecipe(t), Builder: builderA.ID(), Claim: goJob.Claim, JobID: goJob.ID,
			Finished: time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC),
		}
	}
	goodGeneric := func() *lantern.Rebuild {
		return &lantern.Rebuild{
			Source: genJob.Source, Label: "tool", Output: lantern.DigestOf([]byte("generic tool")),
			Recipe: generic.Ref(), Builder: builderA.ID(), Claim: genJob.Claim, Build: genJob.Build.Digest(), JobID: genJob.ID,
			Finished: time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC),
		}
	}
	otherSpec := *genJob.Build
	otherSpec.Commands = []string{"printf 'chosen bytes' > $OUT/tool"}
	tests := []struct {
		name  string
		r     *lantern.Rebuild
		field string
	}{
		{"another recipe", func() *lantern.Rebuild { r := goodGo(); r.Recipe = generic.Ref(); return r }(), "recipe:"},
		{"another recipe digest", func() *lantern.Rebuild {
			r := goodGo()
			r.Recipe.Digest = lantern.DigestOf([]byte("a recipe of my own"))
			return r
		}(), "recipe.digest"},
		{"another build type", func() *lantern.Rebuild {
			r := goodGo()
			r.Recipe.BuildType = recipes.BuildTypeBase + "go/v99"
			return r
		}(), "recipe.buildType"},
		{"another spec", func() *lantern.Rebuild { r := goodGeneric(); r.Build = otherSpec.Digest(); return r }(), "build:"},
		{"no spec", func() *lantern.Rebuild { r := goodGeneric(); r.Build = lantern.Digest{}; return r }(), "build:"},
		{"a label never claimed", func() *lantern.Rebuild { r := goodGo(); r.Label = "evil-linux-amd64"; return r }(), `label "evil-linux-amd64"`},
		{"another source", func() *lantern.Rebuild {
			r := goodGo()
			r.Source.Digest = lantern.DigestOf([]byte("another archive"))
			return r
		}(), "source:"},
		{"another version", func() *lantern.Rebuild { r := goodGo(); r.Source.Version = "v9.9.9"; return r }(), "source:"},
		{"another claim", func() *lantern.Rebuild { r := goodGo(); r.Claim = lantern.DigestOf([]byte("a claim")); return r }(), "claim:"},
		{"no claim", func() *lantern.Rebuild { r := goodGo(); r.Claim = lantern.Digest{}; return r }(), "claim:"},
	}
	a := f.builder(builderA)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := signed(t, builderA, tt.r)
			var resp struct{ Error string }
			if code := f.do("POST", "/api/v1/attestations", env, &resp); code != http.StatusUnprocessableEntity || !strings.Contains(resp.Error, tt.field) {
				t.Errorf("POST = %d %q, want 422 naming %s", code, resp.Error, tt.field)
			}
			// Over NATS, as a builder's worker publishes it.
			if err := a.PublishResult(t.Context(), builderA.ID(), env); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The good ones, published after the bad: once they are in, the bad
	// ones before them on the stream have been refused.
	for _, r := range []*lantern.Rebuild{goodGo(), goodGeneric()} {
		if err := a.PublishResult(t.Context(), builderA.ID(), signed(t, builderA, r)); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []lantern.Job{goJob, genJob} {
		var src struct {
			Attestations []struct {
				Envelope lantern.Digest
				Claim    lantern.Digest
			}
		}
		eventually(t, "the good attestation of "+j.Source.Name, func() bool {
			f.do("GET", "/api/v1/sources/"+j.Source.String(), nil, &src)
			return len(src.Attestations) > 0
		})
		if len(src.Attestations) != 1 || src.Attestations[0].Claim != j.Claim {
			t.Errorf("attestations of %s: %+v, want only the good one, naming claim %s", j.Source, src.Attestations, j.Claim)
		}
	}
	var other struct{ Attestations []any }
	if f.do("GET", "/api/v1/sources/"+goJob.Source.Name+"@v9.9.9", nil, &other); len(other.Attestations) != 0 {
		t.Errorf("the attestation of another version was stored: %+v", other.Attestations)
	}
	if v := f.verdict(lantern.DigestOf([]byte("tool binary"))); v == nil || len(v.Groups) != 1 || len(v.Groups[0].Builders) != 1 {
		t.Errorf("verdict of the go job = %+v, want the good rebuild alone", v)
	}
}

// sourcesResp is what GET /api/v1/sources/NAME@VERSION says of verdicts.
type sourcesResp struct {
	Verdicts []lantern.Verdict
}

// TestTwoClaimersOneSource: a second accepted claim key claims the same
// name@version, source and build with other published bytes: a job of its
// own, and a comparison of its own; the first claimer's is unchanged. Each
// verdict names its claims and their signers. A
// claim of the same name@version with another source makes every verdict of
// it a conflict.
func TestTwoClaimersOneSource(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	honest := lantern.DigestOf([]byte("the real binary"))
	chosen := lantern.DigestOf([]byte("bytes the second claimer chose"))
	first, job := sourceClaim(t, claimKey, "example.org/cmd/shared", honest)
	if code := f.do("POST", "/api/v1/claims", first, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	for _, b := range []*keys.Private{builderA, builderB} {
		if code := f.do("POST", "/api/v1/attestations", rebuilt(t, b, job, "the real binary"), nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d", code)
		}
	}
	path := "/api/v1/sources/" + job.Source.String()
	var before sourcesResp
	eventually(t, "reproduced", func() bool {
		f.do("GET", path, nil, &before)
		return len(before.Verdicts) == 1 && before.Verdicts[0].Status == lantern.StatusReproduced
	})
	if c := before.Verdicts[0].Claims; len(c) != 1 || c[0].Signer != claimKey.ID() || c[0].Envelope != job.Claim {
		t.Errorf("claims of the verdict = %+v, want the first claim and its signer", c)
	}

	// The second claimer: same source, same build, its own published
	// bytes. A job of its own, carrying its own claim: a builder that
	// accepts only its key builds it, and the first claim cannot stand in
	// for it.
	second, job2 := sourceClaim(t, claimKey2, "example.org/cmd/shared", chosen)
	if job2.ID == job.ID {
		t.Fatalf("the second claimer's claim makes the first one's job %s", job.ID)
	}
	if code := f.do("POST", "/api/v1/claims", second, nil); code != http.StatusAccepted {
		t.Fatalf("POST second claim = %d", code)
	}
	eventually(t, "the second job", func() bool { return f.do("GET", "/api/v1/jobs/"+job2.ID, nil, nil) == http.StatusOK })
	for _, b := range []*keys.Private{builderA, builderB} {
		if code := f.do("POST", "/api/v1/attestations", rebuilt(t, b, job2, "the real binary"), nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation of the second job = %d", code)
		}
	}
	var after sourcesResp
	eventually(t, "two comparisons", func() bool {
		f.do("GET", path, nil, &after)
		return len(after.Verdicts) == 2 && after.Verdicts[0].Status != lantern.StatusPending && after.Verdicts[1].Status != lantern.StatusPending
	})
	byPublished := map[lantern.Digest]lantern.Verdict{}
	for _, v := range after.Verdicts {
		byPublished[v.Published] = v
	}
	mine, theirs := byPublished[honest], byPublished[chosen]
	if mine.Status != lantern.StatusReproduced || len(mine.Claims) != 1 || mine.Claims[0].Signer != claimKey.ID() {
		t.Errorf("the first claimer's comparison = %s %+v, want reproduced, its own", mine.Status, mine.Claims)
	}
	if theirs.Status != lantern.StatusMismatch || len(theirs.Claims) != 1 || theirs.Claims[0].Signer != claimKey2.ID() {
		t.Errorf("the second claimer's comparison = %s %+v, want mismatch, its own", theirs.Status, theirs.Claims)
	}
	// Asked about the chosen bytes, the farm says they are not reproduced.
	var art struct{ Verdicts []lantern.Verdict }
	f.do("GET", "/api/v1/artefacts/"+chosen.String(), nil, &art)
	if len(art.Verdicts) != 1 || art.Verdicts[0].Status != lantern.StatusMismatch {
		t.Errorf("verdicts of the chosen bytes = %+v, want one mismatch", art.Verdicts)
	}

	// A third claim gives the same name@version another source: conflict.
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: job.Source.Name, Version: job.Source.Version, Digest: lantern.DigestOf([]byte("another archive"))},
		Recipe: "go", Time: time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC),
	}
	if code := f.do("POST", "/api/v1/claims", signed(t, claimKey2, c), nil); code != http.StatusAccepted {
		t.Fatalf("POST conflicting claim = %d", code)
	}
	var conflict sourcesResp
	eventually(t, "a conflict", func() bool {
		f.do("GET", path, nil, &conflict)
		return len(conflict.Verdicts) > 0 && conflict.Verdicts[0].Status == lantern.StatusConflict
	})
	for _, v := range conflict.Verdicts {
		if v.Status != lantern.StatusConflict || len(v.Conflicts) != 1 || v.Conflicts[0] != c.Source.Digest {
			t.Errorf("verdict %s %v, conflicts %v: want a conflict naming the other archive", v.Status, v.Published, v.Conflicts)
		}
	}
	f.do("GET", "/api/v1/artefacts/"+honest.String(), nil, &art)
	if len(art.Verdicts) == 0 || art.Verdicts[0].Status != lantern.StatusConflict {
		t.Errorf("verdicts of the real binary after the conflict = %+v, want a conflict", art.Verdicts)
	}
}

// TestConflictOfGoSums: two claims give a Go module the same archive digest
// but different h1: hashes — one of them is wrong: the source answer is a
// conflict naming both.
func TestConflictOfGoSums(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	src := lantern.Source{Name: "example.org/cmd/sums", Version: "v1.0.0", Digest: lantern.DigestOf([]byte("sums zip")),
		GoSum: "h1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))}
	other := src
	other.GoSum = "h1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))
	for i, s := range []lantern.Source{src, other} {
		c := &lantern.SourceClaim{Source: s, Recipe: "go", Time: time.Date(2026, 11, 25, 10, i, 0, 0, time.UTC)}
		if code := f.do("POST", "/api/v1/claims", signed(t, claimKey, c), nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %d = %d", i, code)
		}
	}
	var resp struct {
		Status   lantern.Status
		Conflict []struct {
			Digest lantern.Digest
			GoSum  string
		}
	}
	eventually(t, "a conflict", func() bool {
		f.do("GET", "/api/v1/sources/"+src.String(), nil, &resp)
		return resp.Status == lantern.StatusConflict
	})
	if len(resp.Conflict) != 2 || resp.Conflict[0].GoSum == resp.Conflict[1].GoSum {
		t.Errorf("conflict = %+v, want the two h1: hashes", resp.Conflict)
	}
}
