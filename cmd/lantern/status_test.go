package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/scheduler"
)

// TestUpThreshold: lantern up's threshold is at most its builders — 2 by
// default, 1 with --builders 1 — and a --threshold above --builders, which
// no verdict could ever reach, is a command line error (exit 2) that says
// what to change.
func TestUpThreshold(t *testing.T) {
	tests := []struct {
		threshold int
		set       bool
		builders  int
		want      int
		usage     bool
	}{
		{0, false, 1, 1, false},
		{0, false, 2, 2, false},
		{0, false, 5, 2, false},
		{1, true, 2, 1, false},
		{3, true, 3, 3, false},
		{3, true, 2, 0, true},
		{2, true, 1, 0, true},
		{0, true, 2, 0, true},
	}
	for _, tt := range tests {
		got, err := upThreshold(tt.threshold, tt.set, tt.builders)
		if _, isUsage := err.(*usageError); got != tt.want || isUsage != tt.usage {
			t.Errorf("upThreshold(%d, set %v, builders %d) = %d, %v; want %d, usage error %v", tt.threshold, tt.set, tt.builders, got, err, tt.want, tt.usage)
		}
	}

	dir := t.TempDir()
	runLantern(t, dir, pw, "up", "--data", filepath.Join(dir, "data"), "--builders", "2", "--threshold", "3").
		fails(t, "up --builders 2 --threshold 3", 2, "--threshold 3 with --builders 2: a verdict needs 3 builders to agree")

	// A real lantern up with one builder runs its scheduler at threshold
	// 1. Its --buildkit is a socket nobody listens on: up stops there,
	// after the scheduler started, and nothing is built.
	r := runLantern(t, dir, pw, "up", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--builders", "1", "--buildkit", "unix://"+filepath.Join(dir, "no-buildkitd.sock"))
	if r.code != 1 || !strings.Contains(r.stderr, `msg="scheduler API and dashboard"`) || !strings.Contains(r.stderr, "threshold=1") || !strings.Contains(r.stderr, "connect to buildkitd") {
		t.Errorf("lantern up --builders 1 with no buildkitd: exit %d, want 1 after its scheduler started with threshold=1\n%s", r.code, r.stderr)
	}
}

// TestVerdictUnreachableAndStatus runs `lantern scheduler` with --threshold
// 2 and one builder enrolled: `lantern verdict --wait` stops at once, exit
// 1, saying the verdict cannot be reached (it would wait its minute out
// otherwise); `lantern status` shows the builder offline with the job
// queued, the pending job and the warning; --json is the API's answer; and
// with the scheduler gone, status exits 1.
func TestVerdictUnreachableAndStatus(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "builder").must(t, "keygen builder")
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startLanternProc(t, dir, "scheduler", "--data", data, "--listen", addr, "--nats-listen", "127.0.0.1:0", "--claim-key", "maint.pub",
		"--threshold", "2", "--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32")
	base := "http://" + addr
	waitFor(t, p, "the scheduler's API", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	runLantern(t, dir, pw, "builder", "add", "alice", "builder.pub", "--data", data).must(t, "builder add")
	waitFor(t, p, "alice enrolled", func() bool {
		r := runLantern(t, dir, nil, "status", "--api", base, "--json")
		return r.code == 0 && strings.Contains(r.stdout, `"name": "alice"`)
	})

	putFile(t, dir, "hello.tar.gz", "hello source")
	putFile(t, dir, "build.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("cd", 32)+`", "commands": ["make"], "outputs": {"hello-linux-amd64": "hello"}}`)
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--fetch", "http://127.0.0.1:1/hello.tar.gz", "--recipe", "generic", "--build", "build.json", "--post", base).must(t, "claim sign --post")

	const want = "cannot be reached: threshold 2, the farm has 1 builder (lantern builder add, or --threshold)"
	r := runLantern(t, dir, nil, "verdict", "--api", base, "--wait", "1m", "example.org/hello@v1.0.0")
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("lantern verdict --wait on a farm of one at threshold 2: exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, want)
	}

	// The job is stored once the claim is ingested: wait for it in the
	// status, then read the table.
	var st scheduler.Status
	waitFor(t, p, "the job in the status", func() bool {
		r := runLantern(t, dir, nil, "status", "--api", base, "--json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Jobs.Pending == 1 && len(st.Sources) == 1 &&
			len(st.Builders) == 1 && st.Builders[0].Queue != nil && st.Builders[0].Queue.Queued == 1
	})
	if st.Unreachable == nil || st.Unreachable.Message != want || st.Builders[0].Online {
		t.Errorf("status --json: unreachable %+v, alice online %v; want %q and offline", st.Unreachable, st.Builders[0].Online, want)
	}
	r = runLantern(t, dir, nil, "status", "--api", base).must(t, "status")
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("lantern status to a pipe has colour codes:\n%q", r.stdout)
	}
	t.Logf("lantern status:\n%s", r.stdout)
	lines := strings.Split(r.stdout, "\n")
	row := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Errorf("lantern status has no line starting %q:\n%s", prefix, r.stdout)
		return nil
	}
	// BUILDER KEY ONLINE LAST-SEEN QUEUED BUILDING DONE FAILED AGREEMENT
	if got := row("alice"); strings.Join(got, " ") != "alice "+st.Builders[0].ID.Short()+" no never 1 0 0 0 —" {
		t.Errorf("alice's row = %q, want offline, never seen, one job queued, nothing done", got)
	}
	if got := row("example.org/hello@v1.0.0"); len(got) < 3 || got[1] != "—" || got[2] != "no" {
		t.Errorf("the source's row = %q, want no rebuild yet", got)
	}
	for _, w := range []string{"threshold 2", "Verdicts " + want, "1 pending on some builder, 0 dead"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("lantern status lacks %q:\n%s", w, r.stdout)
		}
	}

	if err := p.stop(t, 60*time.Second); err != nil {
		t.Errorf("lantern scheduler after SIGTERM: %v", err)
	}
	runLantern(t, dir, nil, "status", "--api", base).fails(t, "status with no scheduler", 1, "is the scheduler running at "+base)
}

// waitFor polls cond until it holds, failing the test (with p's log) after
// a generous deadline.
func waitFor(t *testing.T, p *lanternProc, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
