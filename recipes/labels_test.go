package recipes

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
)

func TestGoLabel(t *testing.T) {
	for _, tc := range []struct{ pkg, goos, goarch, want string }{
		{"golang.org/x/tools/cmd/stringer", "linux", "amd64", "stringer-linux-amd64"},
		{"golang.org/x/tools/cmd/stringer", "linux", "arm64", "stringer-linux-arm64"},
		{"golang.org/x/tools/cmd/stringer", "windows", "amd64", "stringer-windows-amd64.exe"},
		{"golang.org/x/tools/cmd/stringer", "darwin", "arm64", "stringer-darwin-arm64"},
		{"example.com/tool/v2", "windows", "arm64", "tool-windows-arm64.exe"},
		{"example.com/tool", "js", "wasm", "tool-js-wasm"},
	} {
		if got := GoLabel(tc.pkg, tc.goos, tc.goarch); got != tc.want {
			t.Errorf("GoLabel(%s, %s, %s) = %q, want %q", tc.pkg, tc.goos, tc.goarch, got, tc.want)
		}
	}
}

// TestGoLabelsByVersion: go/v2 makes one label per platform of the job's
// claim; go/v1, which builds only its defaults, makes none for a job that
// names a Go release or platforms, so that an attestation under go/v1
// cannot answer such a job — and still makes its one label for the jobs
// it answered before.
func TestGoLabelsByVersion(t *testing.T) {
	v1, err := LoadVersion("go", 1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := LoadVersion("go", 2)
	if err != nil {
		t.Fatal(err)
	}
	job := lantern.Job{Source: lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0"}, Recipe: "go"}
	plain := []string{"stringer-linux-amd64"}
	if got := v1.Labels(job); !slices.Equal(got, plain) {
		t.Errorf("go/v1 Labels(no go) = %q, want %q", got, plain)
	}
	if got := v2.Labels(job); !slices.Equal(got, plain) {
		t.Errorf("go/v2 Labels(no go) = %q, want %q", got, plain)
	}

	job.Go = &lantern.GoBuild{Version: "1.23.4", Platforms: []string{"darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}}
	if got := v1.Labels(job); len(got) != 0 {
		t.Errorf("go/v1 Labels(go1.23.4, 4 platforms) = %q, want none", got)
	}
	want := []string{"stringer-darwin-arm64", "stringer-linux-amd64", "stringer-linux-arm64", "stringer-windows-amd64.exe"}
	if diff := cmp.Diff(want, v2.Labels(job)); diff != "" {
		t.Errorf("go/v2 Labels(4 platforms) mismatch (-want +got):\n%s", diff)
	}
	if got := GoVersion(v2, job); got != "1.23.4" {
		t.Errorf("GoVersion = %q, want 1.23.4", got)
	}

	job.Go = &lantern.GoBuild{Version: "1.23.4"}
	if got := v2.Labels(job); !slices.Equal(got, plain) {
		t.Errorf("go/v2 Labels(go1.23.4, default platform) = %q, want %q", got, plain)
	}
	if got := v1.Labels(job); len(got) != 0 {
		t.Errorf("go/v1 Labels(go1.23.4) = %q, want none: go/v1 builds go1.24.4", got)
	}

	// Versions() holds both, so that a farm still checks go/v1's attestations.
	var refs []string
	for _, v := range Versions() {
		refs = append(refs, v.Ref.BuildType)
	}
	for _, bt := range []string{BuildTypeBase + "go/v1", BuildTypeBase + "go/v2"} {
		if !slices.Contains(refs, bt) {
			t.Errorf("Versions() = %q, want %s among them", refs, bt)
		}
	}
}
