package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/ocitest"
)

// upProcess is a running `lantern up`.
type upProcess struct {
	cmd     *exec.Cmd
	logs    *buildkittest.SyncBuffer
	exited  chan error
	stopped bool
	url     string // the dashboard's and the API's base URL
	nats    string // its NATS server's URL
}

var (
	upBanner     = regexp.MustCompile(`dashboard +(http://127\.0\.0\.1:[0-9]+)/`)
	upNATSBanner = regexp.MustCompile(`NATS +((?:nats|tls)://127\.0\.0\.1:[0-9]+) `)
)

// startUp runs `lantern up` on data with args, and waits for its banner.
func startUp(t *testing.T, dir, data, buildkitd string, args ...string) *upProcess {
	t.Helper()
	cmd := exec.Command(lanternBin, append([]string{"up", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	// The default data dir, where an up with another --data names its own
	// for 'lantern rebuild', is dir's: each test's up is found by its own.
	cmd.Env = append(os.Environ(), "LANTERN_PASSWORD=", "LANTERN_BUILDKITD="+buildkitd, "XDG_DATA_HOME="+filepath.Join(dir, "xdg"))
	p := &upProcess{cmd: cmd, logs: new(buildkittest.SyncBuffer), exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("lantern up's output:\n%s", p.logs)
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := upBanner.FindStringSubmatch(p.logs.String()); m != nil {
			p.url = m[1]
			if n := upNATSBanner.FindStringSubmatch(p.logs.String()); n != nil {
				p.nats = n[1]
			} else {
				t.Fatalf("lantern up's banner names no NATS URL:\n%s", p.logs)
			}
			return p
		}
		select {
		case err := <-p.exited:
			p.stopped = true
			t.Fatalf("lantern up exited before it was up: %v\n%s", err, p.logs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lantern up not up after 2 minutes:\n%s", p.logs)
		}
	}
}

// stop sends what Ctrl-C sends and expects a clean exit.
func (p *upProcess) stop(t *testing.T) {
	t.Helper()
	p.stopped = true
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("lantern up after Ctrl-C: %v\n%s", err, p.logs)
		}
	case <-time.After(2 * time.Minute):
		p.cmd.Process.Kill()
		t.Fatalf("lantern up did not stop on Ctrl-C\n%s", p.logs)
	}
}

type sourceJSON struct {
	Verdicts     []lantern.Verdict
	Attestations []struct {
		Builder lantern.Digest
		Kind    lantern.Kind
		Output  lantern.Digest
	}
}

func (p *upProcess) source(t *testing.T, src string) (sourceJSON, int) {
	t.Helper()
	var v sourceJSON
	resp, err := http.Get(p.url + "/api/v1/sources/" + src)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&v)
	return v, resp.StatusCode
}

// waitAnswered waits until n builders answered every label of src.
func (p *upProcess) waitAnswered(t *testing.T, src string, n int, within time.Duration) sourceJSON {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, code := p.source(t, src)
		if code == http.StatusOK && len(v.Attestations) >= n && len(v.Verdicts) > 0 && v.Verdicts[0].Status != lantern.StatusPending {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not answered by %d builders within %s: %+v", src, n, within, v)
		}
		time.Sleep(time.Second)
	}
}

// TestUp is the embedded default end to end, with every real part: `lantern
// up` starts NATS, the scheduler, buildkitd and two workers with keys of
// their own; a real Go command from the module proxy, claimed with `lantern
// rebuild --wait` and nothing but up's data dir, is rebuilt by both, which
// agree; a generic build that stamps the time and host into its output
// makes two disagreeing groups; Ctrl-C stops it all, and the next start
// has everything.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds stringer twice in BuildKit: minutes")
	}
	buildkitd := buildkittest.Require(t)
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	up := startUp(t, dir, data, buildkitd, "--registry-http", reg.Host, "--allow-private-fetch", "--allow-http-fetch")
	claimKey := filepath.Join(data, "up", "claimer.key")
	// 0. Nobody gets onto its bus without the farm's credentials, on
	// loopback too; its builders were enrolled as 'builder add' does.
	if nc, err := nats.Connect(up.nats, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatalf("an anonymous client connected to the NATS of lantern up")
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("anonymous connect to lantern up's NATS = %v, want the server's Authorization Violation", err)
	}
	if r := runLantern(t, dir, nil, "builder", "list", "--data", data).must(t, "builder list"); !strings.Contains(r.stdout, "builder-1") || !strings.Contains(r.stdout, "builder-2") {
		t.Errorf("lantern up's builders are not enrolled:\n%s", r.stdout)
	}

	// 1. A Go command, claimed as CI would: 'lantern rebuild' resolves it
	// through the module proxy, checks it against the checksum database,
	// signs with up's claim key and posts to up's farm, and waits in the
	// background for the verdict. It is given nothing but the command:
	// up runs with a data dir of its own, as make run's, and rebuild finds
	// it from the default data dir (the test's), with no --data.
	stringer := "golang.org/x/tools/cmd/stringer@v0.30.0"
	// It waits 15m, not the 10m a person would give it: on CI's loaded two
	// cores the first build (the toolchain fetched, checked and sent to
	// BuildKit) has taken up to nine; the log says how long it took.
	rebuildStart := time.Now()
	rebuilt := startLantern(t, dir, []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg")}, "rebuild", stringer, "--wait", "15m", "-o", filepath.Join(dir, "stringer.claim.json"))

	// 2. A generic build that is not reproducible: it stamps the time and
	// the host it ran on.
	tarball := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) }))
	defer files.Close()
	putFile(t, dir, "stamp.json", fmt.Sprintf(`{"image": %q, "commands": ["echo \"built at $(date -u) on $(hostname)\" > \"$OUT/stamp.txt\""], "outputs": {"stamp": "stamp.txt"}}`, image))
	putFile(t, dir, "hello.tar.gz", string(tarball))
	runLantern(t, dir, []string{"LANTERN_PASSWORD="}, "claim", "sign", "--key", claimKey, "--source", "stamp@1.0",
		"--source-file", "hello.tar.gz", "--fetch", files.URL+"/hello.tar.gz", "--recipe", "generic", "--build", "stamp.json",
		"--post", up.url).must(t, "claim sign --post stamp")

	agree := up.waitAnswered(t, stringer, 2, 15*time.Minute)
	vd := agree.Verdicts[0]
	if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 {
		t.Errorf("%s: verdict %+v, want reproduced by both builders", stringer, vd)
	}
	// The rebuild saw it through: exit 0, the output that both builders
	// and a host's own go install of go1.24.4 for linux/amd64 make, the
	// dashboard's page, and each builder's progress (plain lines: its
	// stderr is not a terminal).
	r := rebuilt().must(t, "lantern rebuild --wait "+stringer)
	t.Logf("lantern rebuild %s --wait 15m: exit 0 after %s, and printed:\n%s", stringer, time.Since(rebuildStart).Round(time.Second), r.stdout)
	if !strings.Contains(r.stderr, "the farm and claim key of the lantern up running with --data "+data) {
		t.Errorf("lantern rebuild with no --data did not say whose farm it took: %q", r.stderr)
	}
	const stringerDigest = "sha256:cb39aa84346393114f56a2d0fe6caad4c778f3db8774e0853e7f3c798ace2134"
	if !strings.Contains(r.stdout, stringer+" stringer-linux-amd64: reproduced") || !strings.Contains(r.stdout, stringerDigest+"  built by 2") ||
		!strings.Contains(r.stdout, "dashboard: "+up.url+"/sources/"+stringer) {
		t.Errorf("lantern rebuild printed %q, want the label reproduced, %s built by 2 and the dashboard's page", r.stdout, stringerDigest)
	}
	if !regexp.MustCompile(`builder-1 done after \d`).MatchString(r.stderr) || !regexp.MustCompile(`builder-2 done after \d`).MatchString(r.stderr) {
		t.Errorf("lantern rebuild's progress %q, want each builder done, with the time it took", r.stderr)
	}
	t.Logf("%s %s: %s, %s by %d builders", stringer, vd.Label, vd.Status, vd.Groups[0].Output, len(vd.Groups[0].Builders))
	// The same through the command line a person would use.
	r = runLantern(t, dir, nil, "verdict", "--api", up.url, stringer).must(t, "lantern verdict")
	if !strings.Contains(r.stdout, "reproduced") || !strings.Contains(r.stdout, vd.Groups[0].Output.String()) {
		t.Errorf("lantern verdict printed %q, want reproduced and the output", r.stdout)
	}

	up.dashboardShows(t, stringer, vd)
	// A client's own check of it: lantern verify (issue 11).
	bin := verifyOnFarm(t, dir, data, up, stringer, vd)

	disagree := up.waitAnswered(t, "stamp@1.0", 2, 5*time.Minute)
	vd = disagree.Verdicts[0]
	if vd.Status != lantern.StatusMismatch || len(vd.Groups) != 2 || len(vd.Groups[0].Builders) != 1 || len(vd.Groups[1].Builders) != 1 {
		t.Errorf("stamp@1.0: verdict %+v, want a mismatch of two groups of one builder", vd)
	}
	up.dashboardShows(t, "stamp@1.0", vd)
	runLantern(t, dir, nil, "verdict", "--api", up.url, "stamp@1.0").fails(t, "lantern verdict on a mismatch", 3, "contradicted")
	if len(vd.Groups) == 2 {
		up.diffShows(t, vd)
	}

	// A second farm, which one of this farm's builders answers too.
	twoFarms(t, dir, data, up, buildkitd, stringer, filepath.Join(dir, "stringer.claim.json"), bin)

	// Ctrl-C, and a new start that resumes with all data.
	up.stop(t)
	up = startUp(t, dir, data, buildkitd, "--registry-http", reg.Host, "--allow-private-fetch", "--allow-http-fetch")
	if v, code := up.source(t, stringer); code != http.StatusOK || len(v.Verdicts) != 1 || v.Verdicts[0].Status != lantern.StatusReproduced || len(v.Attestations) != 2 {
		t.Errorf("after a restart: %d %+v, want the same verdict and both attestations", code, v)
	}
	if strings.Count(up.logs.String(), "made a builder key") != 0 {
		t.Errorf("the restart made new keys")
	}
	// Any platform (issue 12): one more claim of stringer, three platforms.
	rebuildPlatforms(t, dir, data, stringer)
	// Another Go release, from a published binary, and the CI example
	// (issue 12).
	publishedOnFarm(t, dir, data, up)
	up.stop(t)
}

// diffShows checks that the farm made diffoscope's report on the two
// groups' outputs of vd, a verdict on stamp@1.0, and that the API and the
// dashboard show it: the two stamps.
func (p *upProcess) diffShows(t *testing.T, vd lantern.Verdict) {
	t.Helper()
	if _, err := exec.LookPath("diffoscope"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no diffoscope: %v\nCI must run the diffoscope tests ('make diffoscope')", err)
		}
		t.Logf("no diffoscope on the PATH: not checking the difference report (%v)", err)
		return
	}
	path := "/diffs/" + vd.Groups[0].Output.String() + "/" + vd.Groups[1].Output.String()
	var rec struct{ State, Reason string }
	deadline := time.Now().Add(2 * time.Minute)
	for rec.State == "" || rec.State == "pending" {
		if time.Now().After(deadline) {
			t.Fatalf("no difference report after 2 minutes: %+v", rec)
		}
		time.Sleep(200 * time.Millisecond)
		resp, err := http.Get(p.url + "/api/v1" + path)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&rec)
		resp.Body.Close()
	}
	if rec.State != "done" {
		t.Fatalf("difference report: %+v, want done", rec)
	}
	stamps := regexp.MustCompile(`(?m)^([-+])built at .* on .*$`)
	for _, url := range []string{p.url + "/api/v1" + path + "/report", p.url + path} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		found := map[string]bool{}
		for _, m := range stamps.FindAllStringSubmatch(html.UnescapeString(string(b)), -1) {
			found[m[1]] = true
		}
		if resp.StatusCode != http.StatusOK || !found["-"] || !found["+"] || !strings.Contains(string(b), "a/stamp") {
			t.Errorf("GET %s = %s, want diffoscope's report with both stamps:\n%s", url, resp.Status, b)
		}
	}
}

// dashboardShows checks that the dashboard's page of src shows the verdict
// vd: its status, and each group's output with its builders.
func (p *upProcess) dashboardShows(t *testing.T, src string, vd lantern.Verdict) {
	t.Helper()
	resp, err := http.Get(p.url + "/sources/" + src)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard %s: %s\n%s", src, resp.Status, page)
	}
	if !strings.Contains(page, `id="status">`+string(vd.Status)+`<`) {
		t.Errorf("dashboard %s does not show the status %s", src, vd.Status)
	}
	if n := strings.Count(page, `<div class="group `); n != len(vd.Groups) {
		t.Errorf("dashboard %s shows %d groups, want %d", src, n, len(vd.Groups))
	}
	for _, g := range vd.Groups {
		if !strings.Contains(page, `title="`+g.Output.String()+`"`) {
			t.Errorf("dashboard %s does not show the output %s", src, g.Output)
		}
		for _, b := range g.Builders {
			if !strings.Contains(page, `title="`+b.String()+`"`) {
				t.Errorf("dashboard %s does not show the builder %s", src, b)
			}
		}
	}
}
