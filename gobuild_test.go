package lantern_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

func goClaim(g *lantern.GoBuild) *lantern.SourceClaim {
	return &lantern.SourceClaim{
		Source: lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0",
			Digest: lantern.DigestOf([]byte("zip")), GoSum: "h1:" + strings.Repeat("A", 43) + "="},
		Recipe: "go",
		Go:     g,
		Time:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// TestJobIDStable pins the id of a job without a GoBuild to what it was
// before claims had one: stores and go/v1 attestations name jobs by it.
func TestJobIDStable(t *testing.T) {
	c := goClaim(nil)
	signer := lantern.DigestOf([]byte("key"))
	if got, want := lantern.JobFromClaim(c, []byte("env"), signer).ID, "jde208e03089071823ae116a00b771bde"; got != want {
		t.Errorf("JobFromClaim(no go).ID = %s, want %s (the id of such a job before claims named a Go release)", got, want)
	}
}

// TestJobIDGoBuild: every field of a GoBuild is part of what is built, so
// each makes another job.
func TestJobIDGoBuild(t *testing.T) {
	signer := lantern.DigestOf([]byte("key"))
	builds := []*lantern.GoBuild{
		nil,
		{Version: "1.24.4"}, // the default, named: still another claim's job
		{Version: "1.23.4"},
		{Platforms: []string{"linux/amd64"}},
		{Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Version: "1.23.4", Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Version: "1.23.4", Platforms: []string{"linux/amd64", "linux/arm64", "windows/amd64"}},
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Tags: []string{"linux/arm64"}}, // no ambiguity across fields
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Ldflags: "-s"},
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Tags: []string{"netgo"}},
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Tags: []string{"netgo", "osusergo"}},
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Tags: []string{"osusergo", "netgo"}}, // the order is in the binary
		{Version: "1.23.4", Platforms: []string{"linux/amd64"}, Tags: []string{"netgo,osusergo"}},
	}
	seen := map[string]int{}
	for i, g := range builds {
		id := lantern.JobID(goClaim(nil).Source, "go", nil, g, signer)
		if j, ok := seen[id]; ok {
			t.Errorf("JobID(%v) = JobID(%v) = %s, want them apart", g, builds[j], id)
		}
		seen[id] = i
		c := goClaim(g)
		if job := lantern.JobFromClaim(c, []byte("env"), signer); job.ID != id || job.Go != g {
			t.Errorf("JobFromClaim(%v) = %s with %v, want %s", g, job.ID, job.Go, id)
		}
	}
}

// TestMatchesClaimGo: a job whose Go release or platforms are not its
// claim's is not what its claimer signed, whatever its id says.
func TestMatchesClaimGo(t *testing.T) {
	signer := lantern.DigestOf([]byte("key"))
	c := goClaim(&lantern.GoBuild{Version: "1.23.4", Platforms: []string{"linux/amd64", "windows/amd64"}})
	for name, forge := range map[string]func(j *lantern.Job){
		"no go":           func(j *lantern.Job) { j.Go = nil },
		"another release": func(j *lantern.Job) { j.Go = &lantern.GoBuild{Version: "1.23.3", Platforms: c.Go.Platforms} },
		"a platform less": func(j *lantern.Job) { j.Go = &lantern.GoBuild{Version: "1.23.4", Platforms: []string{"linux/amd64"}} },
		"ldflags":         func(j *lantern.Job) { g := *c.Go; g.Ldflags = "-X main.evil=1"; j.Go = &g },
		"tags":            func(j *lantern.Job) { g := *c.Go; g.Tags = []string{"netgo"}; j.Go = &g },
	} {
		t.Run(name, func(t *testing.T) {
			job := lantern.JobFromClaim(c, []byte("env"), signer)
			if err := job.MatchesClaim(c, signer); err != nil {
				t.Fatalf("MatchesClaim(its own claim) = %v", err)
			}
			forge(&job)
			if err := job.MatchesClaim(c, signer); err == nil || !strings.Contains(err.Error(), "go:") {
				t.Errorf("MatchesClaim(job with go %v) = %v, want a go: error", job.Go, err)
			}
		})
	}
	// Also with the job's id made to fit the forged field: caught all the same.
	job := lantern.JobFromClaim(c, []byte("env"), signer)
	job.Go = &lantern.GoBuild{Version: "1.22.0"}
	job.ID = lantern.JobID(job.Source, job.Recipe, nil, job.Go, signer)
	if err := job.MatchesClaim(c, signer); err == nil {
		t.Errorf("MatchesClaim(job with go1.22.0 and its id) = nil, want an error")
	}
}

func TestSourceClaimGoValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		recipe string
		g      *lantern.GoBuild
		want   string // "" valid, else part of the error
	}{
		{"version", "go", &lantern.GoBuild{Version: "1.23.4"}, ""},
		{"x.y.0", "go", &lantern.GoBuild{Version: "1.24.0"}, ""},
		{"platforms", "go", &lantern.GoBuild{Platforms: []string{"darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}}, ""},
		{"no recipe named, a GoSum", "", &lantern.GoBuild{Version: "1.23.4"}, ""},
		{"generic", "generic", &lantern.GoBuild{Version: "1.23.4"}, "go: only claims with recipe"},
		{"empty", "go", &lantern.GoBuild{}, "all missing"},
		{"go prefix", "go", &lantern.GoBuild{Version: "go1.23.4"}, "go.version"},
		{"no patch", "go", &lantern.GoBuild{Version: "1.23"}, "go.version"},
		{"rc", "go", &lantern.GoBuild{Version: "1.25rc1"}, "go.version"},
		{"before toolchain modules", "go", &lantern.GoBuild{Version: "1.20.14"}, "go.version"},
		{"leading zero", "go", &lantern.GoBuild{Version: "1.23.04"}, "go.version"},
		{"go 2", "go", &lantern.GoBuild{Version: "2.0.0"}, "go.version"},
		{"placeholder", "go", &lantern.GoBuild{Version: "1.23.4}{goarch"}, "go.version"},
		{"unknown platform", "go", &lantern.GoBuild{Platforms: []string{"linux/amd65"}}, "platforms[0]"},
		{"GOOS only", "go", &lantern.GoBuild{Platforms: []string{"linux"}}, "platforms[0]"},
		{"upper case", "go", &lantern.GoBuild{Platforms: []string{"Linux/amd64"}}, "platforms[0]"},
		{"path", "go", &lantern.GoBuild{Platforms: []string{"linux/amd64/../../x"}}, "platforms[0]"},
		{"broken port", "go", &lantern.GoBuild{Platforms: []string{"linux/sparc64"}}, "platforms[0]"},
		{"twice", "go", &lantern.GoBuild{Platforms: []string{"linux/amd64", "linux/amd64"}}, "sorted, each once"},
		{"unsorted", "go", &lantern.GoBuild{Platforms: []string{"windows/amd64", "linux/amd64"}}, "sorted, each once"},
		{"ldflags", "go", &lantern.GoBuild{Version: "1.23.4", Ldflags: "-s -w"}, "ldflags"},
		{"tags", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"netgo", "lantern_test", "v1.2", "with-dash"}}, ""},
		{"tags in the order given", "go", &lantern.GoBuild{Tags: []string{"zz", "aa"}}, ""},
		{"tag with a comma", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"netgo,osusergo"}}, "tags: [0]"},
		{"tag with a space", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"netgo osusergo"}}, "tags: [0]"},
		{"tag of a flag", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"-ldflags=-X=main.evil=1"}}, "tags: [0]"},
		{"tag with a quote", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"'netgo'"}}, "tags: [0]"},
		{"tag with a placeholder", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"{goarch}"}}, "tags: [0]"},
		{"empty tag", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{""}}, "tags: [0]"},
		{"tag twice", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{"netgo", "osusergo", "netgo"}}, "tags: [2] \"netgo\": named twice"},
		{"too many tags", "go", &lantern.GoBuild{Version: "1.23.4", Tags: strings.Split(strings.Repeat("t,", lantern.MaxGoTags)+"t", ",")}, "at most"},
		{"long tag", "go", &lantern.GoBuild{Version: "1.23.4", Tags: []string{strings.Repeat("t", 65)}}, "tags: [0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goClaim(tc.g)
			c.Recipe = tc.recipe
			if tc.recipe == "generic" {
				c.Fetch = "https://example.org/src.tar.gz"
				c.Build = &lantern.BuildSpec{}
			}
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				// And through JSON, as a farm reads it.
				b, _ := json.Marshal(c)
				var back lantern.SourceClaim
				if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil || back.Go.String() != c.Go.String() {
					t.Fatalf("the claim's JSON %s reads back as %v (%v)", b, back.Go, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestParseGoFlags(t *testing.T) {
	got, err := lantern.ParseGoPlatforms("windows/amd64, linux/arm64,linux/amd64")
	if want := []string{"linux/amd64", "linux/arm64", "windows/amd64"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseGoPlatforms = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "linux/amd64,", "linux/amd64,linux/amd64", "linux-amd64", "linux/amd64;rm"} {
		if got, err := lantern.ParseGoPlatforms(bad); err == nil {
			t.Errorf("ParseGoPlatforms(%q) = %v, want an error", bad, got)
		}
	}
	if v, err := lantern.ParseGoVersion("go1.23.4"); err != nil || v != "1.23.4" {
		t.Errorf("ParseGoVersion(go1.23.4) = %q, %v; want 1.23.4", v, err)
	}
	for _, bad := range []string{"", "1.23", "latest", "1.20.1", "go1.23.4 "} {
		if v, err := lantern.ParseGoVersion(bad); err == nil {
			t.Errorf("ParseGoVersion(%q) = %q, want an error", bad, v)
		}
	}
}

// FuzzGoBuild: a GoBuild that a claim's JSON gives and that Validate
// passes names a Go release and known platforms, sorted, each once, as
// ParseGoVersion and ParseGoPlatforms read them, tags CheckGoTags passes,
// and no -ldflags; and two
// such GoBuilds make one job id only when they are the same build.
func FuzzGoBuild(f *testing.F) {
	for _, s := range [][2]string{
		{`{"version": "1.23.4", "platforms": ["linux/arm64", "windows/amd64"]}`, `{"version": "1.23.4"}`},
		{`{"platforms": ["linux/amd64"]}`, `{"version": "1.24.4", "platforms": ["linux/amd64"]}`},
		{`{"version": "1.21.0", "platforms": []}`, `{"version": "1.21.0"}`},
		{`{"version": "go1.23.4"}`, `{"version": "1.23.4", "ldflags": "-X main.v=1"}`},
		{`{"platforms": ["windows/amd64", "linux/amd64"]}`, `{"platforms": ["linux/amd64", "linux/amd64"]}`},
		{`{"platforms": ["linux/amd64", "windows/amd64"]}`, `{"platforms": ["linux/amd64,windows/amd64"]}`},
		{`{"version": "1.23.4", "tags": ["netgo"]}`, `{"version": "1.100.0", "platforms": ["../..", "linux/amd64 "]}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	source := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: lantern.DigestOf([]byte("zip"))}
	signer := lantern.DigestOf([]byte("key"))
	valid := func(t *testing.T, b []byte) *lantern.GoBuild {
		var g lantern.GoBuild
		if json.Unmarshal(b, &g) != nil || g.Validate() != nil {
			return nil
		}
		if g.Version != "" {
			if v, err := lantern.ParseGoVersion(g.Version); err != nil || v != g.Version {
				t.Fatalf("Validate passed version %q, ParseGoVersion = %q, %v", g.Version, v, err)
			}
		}
		if len(g.Platforms) > 0 {
			p, err := lantern.ParseGoPlatforms(strings.Join(g.Platforms, ","))
			if err != nil || !slices.Equal(p, g.Platforms) {
				t.Fatalf("Validate passed platforms %q, ParseGoPlatforms of them = %q, %v", g.Platforms, p, err)
			}
		}
		for _, p := range g.Platforms {
			if !slices.Contains(lantern.GoPlatforms, p) {
				t.Fatalf("Validate passed platform %q, not one of GoPlatforms", p)
			}
		}
		if g.Ldflags != "" {
			t.Fatalf("Validate passed -ldflags %q, which the go recipe does not apply", g.Ldflags)
		}
		if err := lantern.CheckGoTags(g.Tags); err != nil {
			t.Fatalf("Validate passed tags %q: %v", g.Tags, err)
		}
		if lantern.JobID(source, "go", nil, &g, signer) == lantern.JobID(source, "go", nil, nil, signer) {
			t.Fatalf("JobID(%+v) is the id of the recipe's defaults", g)
		}
		return &g
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ga, gb := valid(t, a), valid(t, b)
		if ga == nil || gb == nil {
			return
		}
		same := ga.Version == gb.Version && slices.Equal(ga.Platforms, gb.Platforms) && slices.Equal(ga.Tags, gb.Tags)
		if idA, idB := lantern.JobID(source, "go", nil, ga, signer), lantern.JobID(source, "go", nil, gb, signer); (idA == idB) != same {
			t.Fatalf("JobID(%+v) = %s, JobID(%+v) = %s: want one id exactly for one build", ga, idA, gb, idB)
		}
	})
}
