package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/lanternfarm/lantern"
)

// rebuildPlatforms is issue 12's must-show 2 through the command line, on
// a running 'lantern up' of two builders: 'lantern rebuild --platform
// linux/amd64,linux/arm64,windows/amd64 --wait' makes one claim, whose one
// job each builder builds for all three platforms; it exits 0, each label
// reproduced by both builders and equal to the host's
// GOOS=… GOARCH=… CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=go1.24.4 go install.
func rebuildPlatforms(t *testing.T, dir, data, stringer string) {
	t.Helper()
	r := runLantern(t, dir, []string{"LANTERN_DATA=" + data}, "rebuild", stringer,
		"--platform", "linux/amd64,linux/arm64,windows/amd64", "--wait", "20m", "--json").must(t, "lantern rebuild --platform")
	var res struct {
		Status   string
		Job      string
		Verdicts []lantern.Verdict
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("lantern rebuild --json printed %q: %v", r.stdout, err)
	}
	for _, p := range [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}} {
		label := "stringer-" + p[0] + "-" + p[1]
		if p[0] == "windows" {
			label += ".exe"
		}
		i := slices.IndexFunc(res.Verdicts, func(v lantern.Verdict) bool { return v.Label == label })
		if i < 0 {
			t.Errorf("lantern rebuild --platform: no verdict of %s in %+v", label, res.Verdicts)
			continue
		}
		vd := res.Verdicts[i]
		if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 || vd.Job != res.Job {
			t.Errorf("%s: verdict %+v, want reproduced by both builders in job %s", label, vd, res.Job)
			continue
		}
		if host := hostStringerFor(t, p[0], p[1]); vd.Groups[0].Output != host {
			t.Errorf("%s: the farm's is %s, the host's go install %s", label, vd.Groups[0].Output, host)
		}
		t.Logf("%s: %s by 2 builders, %s, the host's too", label, vd.Status, vd.Groups[0].Output)
	}
}

// hostStringerFor is hostStringer for goos/goarch: the digest of the
// binary the host's go1.24.4 installs, cross-compiling.
func hostStringerFor(t *testing.T, goos, goarch string) lantern.Digest {
	t.Helper()
	d, _, err := lantern.DigestFile(hostStringerInstall(t, "1.24.4", goos, goarch))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
