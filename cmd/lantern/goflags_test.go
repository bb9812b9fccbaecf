package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestClaimSignGoFlags: --go and --platform go into the signed claim,
// sorted; what is not a Go release or a platform, or is given for a claim
// that is not built with the go recipe, is refused with exit 2.
func TestClaimSignGoFlags(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen")
	src := []string{"claim", "sign", "--key", "maint.key", "--source", "golang.org/x/tools/cmd/stringer@v0.30.0",
		"--source-digest", "sha256:" + sha256hex("zip"), "--go-sum", "h1:" + strings.Repeat("A", 43) + "=", "--recipe", "go"}
	runLantern(t, dir, pw, append(slices.Clone(src), "--go", "go1.23.4", "--platform", "windows/amd64,linux/arm64,linux/amd64", "-o", "claim.json")...).must(t, "claim sign")
	r := runLantern(t, dir, nil, "claim", "verify", "--key", "maint.pub", "--json", "claim.json").must(t, "claim verify")
	var got struct {
		Claim struct {
			Go struct {
				Version   string
				Platforms []string
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("claim verify --json printed %q: %v", r.stdout, err)
	}
	if want := []string{"linux/amd64", "linux/arm64", "windows/amd64"}; got.Claim.Go.Version != "1.23.4" || !slices.Equal(got.Claim.Go.Platforms, want) {
		t.Errorf("the claim's go = %+v, want 1.23.4 for %v", got.Claim.Go, want)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no toolchain module", []string{"--go", "1.20.14"}, "--go: go version \"1.20.14\""},
		{"not a release", []string{"--go", "latest"}, "--go:"},
		{"unknown platform", []string{"--platform", "linux/amd64,plan10/amd64"}, `--platform: platform "plan10/amd64"`},
		{"platform twice", []string{"--platform", "linux/amd64,linux/amd64"}, "named twice"},
		{"empty platform", []string{"--platform", "linux/amd64,"}, "--platform:"},
		{"generic recipe", []string{"--go", "1.23.4", "--recipe", "generic", "--fetch", "https://example.org/a.tgz"}, "go: only claims with recipe"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runLantern(t, dir, pw, append(append(slices.Clone(src), tt.args...), "-o", "bad.json")...).fails(t, tt.name, 2, tt.want)
		})
	}
	runLantern(t, dir, nil, "rebuild", "--go", "1.2", "--farm", "http://127.0.0.1:1", "golang.org/x/tools/cmd/stringer@v0.30.0").fails(t, "rebuild --go 1.2", 2, "--go:")
	runLantern(t, dir, nil, "rebuild", "--platform", "linux/x", "--farm", "http://127.0.0.1:1", "golang.org/x/tools/cmd/stringer@v0.30.0").fails(t, "rebuild --platform linux/x", 2, "--platform:")
}
