package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// publishedOnFarm is issue 12's must-shows 3, 4 and 5 on TestUp's running
// 'lantern up' of two builders:
//
//  3. and 4. A binary the host installed with a plain go install of a go1.23
//     release, 'lantern rebuild --published BIN --wait': the claim it posts
//     names go1.23.4 (and linux/amd64, and BIN's digest as published), and
//     both builders reproduce BIN itself, exit 0. The same binary with one
//     byte changed: exit 3, a mismatch against the published artefact. A
//     cgo binary: refused, exit 2, and the farm gets no claim.
//  5. The GitHub Actions example's rebuild step, the very command line of
//     deploy/ci/github-actions.yml, run in a repository holding the
//     example's script and a dist/ of that binary: exit 0.
//
// It costs one build per builder (stringer with go1.23.4); the rest reuse it.
func publishedOnFarm(t *testing.T, dir, data string, up *upProcess) {
	t.Helper()
	const label = "stringer-linux-amd64"
	bin := hostStringerRelease(t, "1.23.4")
	published, _, err := lantern.DigestFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"LANTERN_DATA=" + data}

	r := runLantern(t, dir, env, "rebuild", "--published", bin, "--wait", "20m", "--json").must(t, "lantern rebuild --published (go1.23.4)")
	var res rebuildResults
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("lantern rebuild --published --json printed %q: %v", r.stdout, err)
	}
	if res.Status != "reproduced" || len(res.Claims) != 1 || len(res.Claims[0].Verdicts) != 1 {
		t.Fatalf("lantern rebuild --published: %+v, want one claim, reproduced", res)
	}
	c, vd := res.Claims[0], res.Claims[0].Verdicts[0]
	if vd.Label != label || vd.Status != lantern.StatusReproduced || vd.Published != published || len(vd.Groups) != 1 ||
		!vd.Groups[0].Published || vd.Groups[0].Output != published || len(vd.Groups[0].Builders) != 2 {
		t.Errorf("lantern rebuild --published: verdict %+v, want %s reproduced by both builders, equal to the published %s", vd, label, published)
	}
	// The claim the farm got, as its API shows it.
	sj := up.claims(t, c.Source)
	i := slices.IndexFunc(sj, func(cr scheduler.ClaimRecord) bool { return cr.Envelope == c.Claim })
	if i < 0 {
		t.Fatalf("the farm has no claim %s of %s: %+v", c.Claim, c.Source, sj)
	}
	if g := sj[i].Claim.Go; g == nil || g.Version != "1.23.4" || !slices.Equal(g.Platforms, []string{"linux/amd64"}) || len(g.Tags) != 0 ||
		sj[i].Claim.Artefacts[label] != published || len(sj[i].Claim.Artefacts) != 1 {
		t.Errorf("the posted claim: go %v, artefacts %v; want go1.23.4 for linux/amd64, %s published as %s", g, sj[i].Claim.Artefacts, label, published)
	}
	t.Logf("--published %s: go%s for %s, %s %s by %d builders, the published %s", filepath.Base(bin), sj[i].Claim.Go.Version, sj[i].Claim.Go.Platforms[0],
		vd.Label, vd.Status, len(vd.Groups[0].Builders), published)

	// One byte changed: the builders' agreement is not the published file.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	changed := filepath.Join(t.TempDir(), "stringer")
	if err := os.WriteFile(changed, b, 0o755); err != nil {
		t.Fatal(err)
	}
	r = runLantern(t, dir, env, "rebuild", "--published", changed, "--wait", "10m")
	r.fails(t, "lantern rebuild --published of a changed binary", 3, label+" mismatch against the published artefact")
	t.Logf("--published of a changed copy: exit %d: %s", r.code, firstLine(r.stderr, "mismatch"))
	if !strings.Contains(r.stderr, changed) || !strings.Contains(r.stdout, label+": mismatch") {
		t.Errorf("lantern rebuild --published of a changed binary: stdout %q, stderr %q; want the mismatch and the file named", r.stdout, r.stderr)
	}

	// A cgo binary: refused, and nothing reaches the farm.
	goEnv, _ := publishedProxy(t)
	cgo := hostInstall(t, append(goEnv, "CGO_ENABLED=1"), "-trimpath", "example.com/cgohello@v1.0.0")
	before := up.claimsReceived(t)
	r = runLantern(t, dir, env, "rebuild", "--published", cgo, "--wait", "10m")
	r.fails(t, "lantern rebuild --published of a cgo binary", 2, cgo+": built with cgo")
	after := up.claimsReceived(t)
	if after != before {
		t.Errorf("the farm received %d claims while a cgo binary was refused, want none", after-before)
	}
	t.Logf("--published of a cgo binary: exit %d, the farm's claims %d before and %d after: %s", r.code, before, after, firstLine(r.stderr, "cgo"))

	// 5. The GitHub Actions example, in a repository with the script and
	// a dist/ whose file name has a space in it.
	repo := t.TempDir()
	for _, d := range []string{"deploy/ci", "dist"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, repoFile(t, "deploy/ci/rebuild-release.sh"), filepath.Join(repo, "deploy", "ci", "rebuild-release.sh"))
	copyFile(t, bin, filepath.Join(repo, "dist", "stringer linux amd64"))
	runnerTemp := t.TempDir()
	copyFile(t, filepath.Join(data, "up", "claimer.key"), filepath.Join(runnerTemp, "claim.key"))
	step := ciRebuildStep(t, repoFile(t, "deploy/ci/github-actions.yml"))
	r = runIn(t, repo, []string{"PATH=" + filepath.Dir(lanternBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"RUNNER_TEMP=" + runnerTemp, "LANTERN_API=" + up.url, "LANTERN_PASSWORD=", "LANTERN_WAIT=10m"}, "sh", "-c", step)
	if r.code != 0 || !strings.Contains(r.stdout, label+": reproduced") || !strings.Contains(r.stdout, "published  "+published.String()) {
		t.Errorf("the GitHub Actions example's step %q: exit %d\nstdout: %s\nstderr: %s\nwant exit 0, %s reproduced and equal to the published", step, r.code, r.stdout, r.stderr, label)
	}
	t.Logf("the GitHub Actions example's step %q: exit %d: %s", step, r.code, firstLine(r.stdout, "reproduced"))
}

// firstLine returns the first line of s that holds sub, for the log.
func firstLine(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// hostStringerRelease installs stringer on this machine with a plain go
// install of Go release goVersion, as a project publishing it would, and
// returns the binary's path (hostStringerInstall).
func hostStringerRelease(t *testing.T, goVersion string) string {
	return hostStringerInstall(t, goVersion, "linux", "amd64")
}

// repoFile returns the absolute path of the repository's file name
// (slash-separated, from the repository's root).
func repoFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// claims returns the source claims of src the farm's API lists.
func (p *upProcess) claims(t *testing.T, src string) []scheduler.ClaimRecord {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/sources/" + src)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Claims []scheduler.ClaimRecord }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/sources/%s: %s, %v", src, resp.Status, err)
	}
	return v.Claims
}

var claimsMetric = regexp.MustCompile(`(?m)^lantern_claims_total\{[^}]*\} ([0-9]+)$`)

// claimsReceived returns how many source claims the farm has received,
// whatever became of them (accepted, duplicate, refused, limited), as its
// metrics count them.
func (p *upProcess) claimsReceived(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	n := 0
	for _, m := range claimsMetric.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	if n == 0 {
		t.Fatalf("GET /metrics counts no claims, though this farm has some:\n%s", b)
	}
	return n
}

// ciRebuildStep returns the command line of a CI example's step that
// rebuilds the release on the farm: its one line that runs
// deploy/ci/rebuild-release.sh with the release's dist/*.
func ciRebuildStep(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if !strings.HasPrefix(line, "#") && strings.Contains(line, "sh deploy/ci/rebuild-release.sh dist/*") {
			found = append(found, strings.TrimSpace(strings.TrimPrefix(line, "- ")))
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d lines run deploy/ci/rebuild-release.sh dist/*, want one: %q", file, len(found), found)
	}
	return found[0]
}

// TestCIExamples: both CI examples build the release as the go recipe
// rebuilds it and hand dist/* to deploy/ci/rebuild-release.sh, which TestUp
// runs against a farm as the GitHub Actions example's step does; the
// script hands each file to 'lantern rebuild --published' as one argument,
// whatever its name.
func TestCIExamples(t *testing.T) {
	for _, file := range []string{"github-actions.yml", "gitlab-ci.yml"} {
		t.Run(file, func(t *testing.T) {
			path := repoFile(t, "deploy/ci/"+file)
			ciRebuildStep(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"CGO_ENABLED=0 GOFLAGS=-trimpath", "go install \"$PKG@$"} {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s does not build the release with %q", file, w)
				}
			}
		})
	}
	// The README shows the GitHub Actions example as it is.
	readme, err := os.ReadFile(repoFile(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	gha, err := os.ReadFile(repoFile(t, "deploy/ci/github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var example strings.Builder
	for line := range strings.Lines(string(gha)) {
		if !strings.HasPrefix(line, "#") {
			example.WriteString(line)
		}
	}
	if !strings.Contains(string(readme), "```yaml\n"+example.String()+"```\n") {
		t.Errorf("README.md does not show deploy/ci/github-actions.yml (less its comment) as a yaml block:\n%s", example.String())
	}

	// The script, with a lantern that prints its arguments one a line.
	dir := t.TempDir()
	echo := putFile(t, dir, "lantern", "#!/bin/sh\nfor a do printf '%s\\n' \"$a\"; done\n")
	if err := os.Chmod(echo, 0o755); err != nil {
		t.Fatal(err)
	}
	script := repoFile(t, "deploy/ci/rebuild-release.sh")
	r := runIn(t, dir, []string{"LANTERN=" + echo}, "sh", script, "dist/a b", "dist/*", "-x")
	want := "rebuild\n--published=dist/a b\n--published=dist/*\n--published=-x\n--wait\n30m\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("rebuild-release.sh ran lantern with %q (exit %d, %s), want %q", r.stdout, r.code, r.stderr, want)
	}
	runIn(t, dir, nil, "sh", script).fails(t, "rebuild-release.sh with no files", 2, "usage")
}
