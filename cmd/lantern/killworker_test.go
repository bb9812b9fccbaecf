package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/ocitest"
)

// TestKillWorkerMidBuild kills a worker with SIGKILL in the middle of a
// build: the job is redelivered to another process of the same builder,
// which completes it, and the farm holds one attestation of it, not two.
// Every part is the real one: the lantern binary as scheduler (with its
// embedded NATS) and as workers, each worker with the buildkitd it starts,
// the generic recipe's builder image in a registry on 127.0.0.1.
func TestKillWorkerMidBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in BuildKit")
	}
	// The workers start their own buildkitd; this one only finds out
	// whether the machine can run one, to skip (or fail under CI) as the
	// other BuildKit tests do.
	probe, probeClient := buildkittest.Start(t)
	probeClient.Close()
	probe.Close()
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)

	const ackWait = 5 * time.Second
	dir := t.TempDir()
	// The build sleeps long enough to be killed in the middle; its sleep's
	// argument is unique, so that the test finds the step's process.
	sleepArg := fmt.Sprintf("8.%06d", rand.IntN(1e6))
	builder, want := helloClaim(t, dir, pw, image, "sleep "+sleepArg)

	runLantern(t, dir, pw, "builder", "add", "builder", "builder.pub", "--data", filepath.Join(dir, "data")).must(t, "builder add")
	// A short ack wait without back-off: the dead worker's job comes back
	// within seconds.
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sched := startLanternProc(t, dir, "scheduler", "--data", filepath.Join(dir, "data"), "--listen", addr,
		"--nats-listen", natsAddr, "--claim-key", "maint.pub", "--threshold", "1",
		"--ack-wait", ackWait.String(), "--no-backoff", "--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32")
	defer sched.stop(t, 60*time.Second)
	api := &farmAPI{t: t, base: "http://" + addr, logs: sched.log}
	api.waitHealthy(60 * time.Second)
	job := api.postClaim(readFile(t, filepath.Join(dir, "claim.json")))

	workerArgs := func(n int) []string {
		return []string{"worker", "--nats", "nats://" + natsAddr, "--creds", filepath.Join(dir, "builder.creds"), "--key", filepath.Join(dir, "builder.key"), "--claim-key", filepath.Join(dir, "maint.pub"),
			"--registry-http", reg.Host, "--work", filepath.Join(dir, fmt.Sprintf("work%d", n)), "--heartbeat", "1s",
			"--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32"} // the source is on 127.0.0.1
	}
	// The workers run in the test's directory, inside the module: there
	// they find bin/buildkitd, as 'go test' does (see worker/buildkit).
	w1 := startLanternProc(t, "", workerArgs(1)...)
	deadline := time.Now().Add(3 * time.Minute)
	var step int
	for {
		if pids := procsWith(func(args []string) bool { return isSleep(args, sleepArg) }); len(pids) > 0 {
			step = pids[0]
			break
		}
		if w1.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("worker 1 never started the build's sleep %s (exited: %v)\nworker 1:\n%s\nscheduler:\n%s", sleepArg, w1.exitedNow(), w1.log, sched.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	daemon1, daemon1Dir := buildkitdOf(t, w1.cmd.Process.Pid)
	t.Logf("worker 1 (pid %d) runs the build's sleep %s as pid %d, in the buildkitd %d of %s", w1.cmd.Process.Pid, sleepArg, step, daemon1, daemon1Dir)
	w1.cmd.Process.Kill()
	<-w1.exited
	killed := time.Now()
	if n := len(api.source("example.org/hello@1.0").Attestations); n != 0 {
		t.Fatalf("after worker 1 was killed in the middle of its build: %d attestations, want none\nworker 1:\n%s", n, w1.log)
	}
	defer cleanUpAfterKilled(t, daemon1, daemon1Dir, sleepArg)

	w2 := startLanternProc(t, "", workerArgs(2)...)
	defer w2.stop(t, 90*time.Second)
	var src sourceView
	for deadline := time.Now().Add(3 * time.Minute); ; {
		src = api.source("example.org/hello@1.0")
		if len(src.Verdicts) == 1 && src.Verdicts[0].Status != lantern.StatusPending {
			break
		}
		if w2.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("no verdict 3 minutes after worker 1 was killed (worker 2 exited: %v): %+v\nworker 2:\n%s\nscheduler:\n%s", w2.exitedNow(), src, w2.log, sched.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("verdict %s %s after worker 1 was killed", src.Verdicts[0].Status, time.Since(killed).Round(time.Second))
	check := func(when string, src sourceView) {
		t.Helper()
		if len(src.Attestations) != 1 {
			t.Fatalf("%s: %d attestations, want 1: %+v\nworker 2:\n%s\nscheduler:\n%s", when, len(src.Attestations), src.Attestations, w2.log, sched.log)
		}
		a := src.Attestations[0]
		if a.Kind != lantern.KindRebuild || a.Builder.String() != builder || a.JobID != job || a.Label != "shout" || a.Output != want {
			t.Errorf("%s: attestation %+v, want a rebuild of job %s by %s, shout = %s", when, a, job, builder, want)
		}
		if v := src.Verdicts[0]; v.Status != lantern.StatusReproduced {
			t.Errorf("%s: verdict %+v, want %s", when, v, lantern.StatusReproduced)
		}
		var j struct {
			Builders map[string]struct{ State string }
		}
		api.get("/api/v1/jobs/"+job, &j)
		if got := j.Builders[builder].State; got != "done" {
			t.Errorf("%s: job %s is %q for the builder, want done", when, job, got)
		}
	}
	check("when the verdict came", src)
	// JetStream's delivery count is in the worker's log only.
	if m := regexp.MustCompile(`msg=building .*delivery=(\d+)`).FindStringSubmatch(w2.log.String()); m == nil || m[1] == "1" {
		t.Errorf("worker 2 logged no build of a redelivered job (match %q):\n%s", m, w2.log)
	}
	// A late redelivery would come within an ack wait or two.
	time.Sleep(2*ackWait + 2*time.Second)
	check(fmt.Sprintf("%s later", 2*ackWait+2*time.Second), api.source("example.org/hello@1.0"))
	// The store keeps one answer per builder, so a second build would show
	// only here: as a duplicate the scheduler refused. (Not checked when
	// the verdict came: the counter moves just after the store commits.)
	if body := api.metrics(); !strings.Contains(body, `lantern_attestations_total{result="accepted"} 1`+"\n") ||
		strings.Contains(body, `lantern_attestations_total{result="duplicate"}`) || strings.Contains(body, `lantern_attestations_total{result="refused"}`) {
		t.Errorf("/metrics, want one accepted attestation and no other:\n%s", grepLines(body, "lantern_attestations_total"))
	}
	if n := strings.Count(w2.log.String(), "msg=building"); n != 1 {
		t.Errorf("worker 2 built %d times, want once:\n%s", n, w2.log)
	}

	daemon2, daemon2Dir := buildkitdOf(t, w2.cmd.Process.Pid)
	if err := w2.stop(t, 90*time.Second); err != nil {
		t.Errorf("worker 2 after SIGTERM: %v\n%s", err, w2.log)
	}
	if procAlive(daemon2) {
		t.Errorf("worker 2 stopped, but its buildkitd %d runs on", daemon2)
	}
	if m := mountsUnder(daemon2Dir); len(m) > 0 {
		t.Errorf("worker 2 stopped, but left mounts under its buildkitd's directory: %q", m)
	}

	// What the killed worker left in its --work, a new worker there cleans
	// up as its buildkitd starts.
	for deadline := time.Now().Add(60 * time.Second); procAlive(daemon1); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed worker's buildkitd %d still runs a minute after its parent died", daemon1)
		}
	}
	left := len(runcContainersUnder(daemon1Dir)) + len(mountsUnder(daemon1Dir))
	w3 := startLanternProc(t, "", workerArgs(1)...)
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(w3.log.String(), "worker taking jobs"); time.Sleep(100 * time.Millisecond) {
		if w3.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("a new worker in the killed one's --work did not start:\n%s", w3.log)
		}
	}
	if c, m := runcContainersUnder(daemon1Dir), mountsUnder(daemon1Dir); len(c) > 0 || len(m) > 0 {
		t.Errorf("a new worker in the killed one's --work left its containers %q and mounts %q", c, m)
	} else {
		t.Logf("the killed worker left %d containers and mounts; a new worker in its --work cleaned them up", left)
	}
	if err := w3.stop(t, 90*time.Second); err != nil {
		t.Errorf("worker 3 after SIGTERM: %v\n%s", err, w3.log)
	}
}

// runcContainersUnder returns the ids of runc's containers whose bundle is
// under dir.
func runcContainersUnder(dir string) []string {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil
	}
	out, _ := exec.Command(runc, "list", "--format", "json").Output()
	var cs []struct{ ID, Bundle string }
	json.Unmarshal(out, &cs)
	var ids []string
	for _, c := range cs {
		if strings.HasPrefix(c.Bundle, dir+"/") {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// cleanUpAfterKilled waits for the buildkitd of a worker killed with SIGKILL
// to exit (the kernel sent it SIGTERM), logs what it left behind — its
// build's step, runc containers, mounts, its directory — and removes it.
// A worker killed before it can stop its buildkitd leaves its directory by
// design (see worker/buildkit); a step still running is logged, not failed:
// the package doc allows it until the next StartDaemon in the same Dir.
func cleanUpAfterKilled(t *testing.T, daemon int, dir, sleepArg string) {
	for deadline := time.Now().Add(60 * time.Second); procAlive(daemon); {
		if time.Now().After(deadline) {
			t.Errorf("the killed worker's buildkitd %d still runs a minute after its parent died", daemon)
			syscall.Kill(-daemon, syscall.SIGKILL)
			syscall.Kill(daemon, syscall.SIGKILL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range procsWith(func(args []string) bool { return isSleep(args, sleepArg) }) {
		t.Logf("left behind by the killed worker: the build's sleep %s, pid %d; killing it", sleepArg, pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if runc, err := exec.LookPath("runc"); err == nil {
		out, _ := exec.Command(runc, "list", "--format", "json").Output()
		var cs []struct{ ID, Status, Bundle string }
		json.Unmarshal(out, &cs)
		for _, c := range cs {
			if strings.HasPrefix(c.Bundle, dir+"/") {
				t.Logf("left behind by the killed worker: runc container %s (%s); deleting it", c.ID, c.Status)
				if out, err := exec.Command(runc, "delete", "--force", c.ID).CombinedOutput(); err != nil {
					t.Errorf("runc delete --force %s: %v\n%s", c.ID, err, out)
				}
			}
		}
	}
	for _, m := range slices.Backward(mountsUnder(dir)) {
		t.Logf("left behind by the killed worker: mount %s; unmounting it", m)
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Logf("left behind by the killed worker: its buildkitd's directory %s; removing it", dir)
		// Never through a mount: what is below it is not the test's.
		if m := mountsUnder(dir); len(m) > 0 {
			t.Errorf("cannot remove %s: still mounted under it: %q", dir, m)
		} else if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	}
}

// lanternProc is a long-running lantern command, such as a scheduler or a
// worker, started by a test.
type lanternProc struct {
	cmd     *exec.Cmd
	log     *buildkittest.SyncBuffer
	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error
}

// startLanternProc starts lantern with args in dir (empty: the test's
// directory), with the key password in its environment, and kills it at the
// end of the test if it still runs.
func startLanternProc(t *testing.T, dir string, args ...string) *lanternProc {
	t.Helper()
	cmd := exec.Command(lanternBin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if (!strings.HasPrefix(kv, "LANTERN_") || strings.HasPrefix(kv, "LANTERN_BUILDKITD=")) && !strings.HasPrefix(kv, "COSIGN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, pw...)
	p := &lanternProc{cmd: cmd, log: new(buildkittest.SyncBuffer), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.exitedNow() {
			p.stop(t, 30*time.Second)
		}
	})
	return p
}

func (p *lanternProc) exitedNow() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit, then SIGKILL, and returns the
// exit's error.
func (p *lanternProc) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if p.exitedNow() {
		return p.waitErr
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("lantern %s did not stop within %s of SIGTERM", p.cmd.Args[1], timeout)
	}
}

// farmAPI is a client of a scheduler's JSON API in a test.
type farmAPI struct {
	t    *testing.T
	base string
	logs fmt.Stringer // the scheduler's, for failures
}

type sourceView struct {
	Verdicts     []lantern.Verdict
	Attestations []struct {
		Kind    lantern.Kind
		Builder lantern.Digest
		JobID   string
		Label   string
		Output  lantern.Digest
	}
}

func (a *farmAPI) do(method, path, body string) (int, []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v\nscheduler:\n%s", method, path, err, a.logs)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}

func (a *farmAPI) get(path string, v any) {
	a.t.Helper()
	code, b := a.do("GET", path, "")
	if code != http.StatusOK {
		a.t.Fatalf("GET %s = %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		a.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

func (a *farmAPI) source(nameVersion string) sourceView {
	a.t.Helper()
	var v sourceView
	a.get("/api/v1/sources/"+nameVersion, &v)
	return v
}

func (a *farmAPI) metrics() string {
	a.t.Helper()
	_, b := a.do("GET", "/metrics", "")
	return string(b)
}

// postClaim posts a signed claim and returns its job's id.
func (a *farmAPI) postClaim(envelope string) string {
	a.t.Helper()
	code, b := a.do("POST", "/api/v1/claims", envelope)
	var accepted struct{ Job string }
	json.Unmarshal(b, &accepted)
	if code != http.StatusAccepted || accepted.Job == "" {
		a.t.Fatalf("POST claim = %d %s\nscheduler:\n%s", code, b, a.logs)
	}
	return accepted.Job
}

func (a *farmAPI) waitHealthy(timeout time.Duration) {
	a.t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		resp, err := http.Get(a.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("scheduler not up after %s: %v\n%s", timeout, err, a.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// isSleep reports whether args are those of the build step's sleep.
func isSleep(args []string, arg string) bool {
	return len(args) == 2 && filepath.Base(args[0]) == "sleep" && args[1] == arg
}

// procsWith returns the processes of the machine whose arguments match.
func procsWith(match func(args []string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if args := procArgs(pid); len(args) > 0 && match(args) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func procArgs(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// procAlive reports whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// buildkitdOf returns the buildkitd a worker process started, and the
// directory it keeps its state in (its --root's parent).
func buildkitdOf(t *testing.T, worker int) (int, string) {
	t.Helper()
	for _, pid := range procsWith(func(args []string) bool { return filepath.Base(args[0]) == "buildkitd" }) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(worker) {
			continue
		}
		args := procArgs(pid)
		if i := slices.Index(args, "--root"); i >= 0 && i+1 < len(args) {
			return pid, filepath.Dir(args[i+1])
		}
	}
	t.Fatalf("worker %d has no buildkitd child", worker)
	return 0, ""
}

// mountsUnder returns the mount points below dir, parents first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	return points
}

// helloClaim makes, in dir, the keys of a maintainer (maint.key) and a
// builder (builder.key), and claim.json: the maintainer's claim of
// example.org/hello@1.0, a tarball served on 127.0.0.1 until the test
// ends, built by the generic recipe in image by the commands first, then
// one that writes the label shout. It returns the builder's key id and
// shout's digest.
func helloClaim(t *testing.T, dir string, pw []string, image string, first ...string) (builder string, want lantern.Digest) {
	t.Helper()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	builder = strings.TrimSpace(runLantern(t, dir, pw, "keygen", "--output-key-prefix", "builder").must(t, "keygen builder").stdout)
	source := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hello-1.0.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(source)
	}))
	t.Cleanup(files.Close)
	spec, err := json.Marshal(map[string]any{
		"image":    image,
		"commands": append(first, `tr a-z A-Z < greeting.txt > "$OUT/shout.txt"`),
		"outputs":  map[string]string{"shout": "shout.txt"},
	})
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "hello-1.0.tar.gz", string(source))
	putFile(t, dir, "build.json", string(spec))
	want = lantern.DigestOf([]byte("HELLO, WORLD\n"))
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@1.0",
		"--source-file", "hello-1.0.tar.gz", "--fetch", files.URL+"/hello-1.0.tar.gz", "--recipe", "generic",
		"--build", "build.json", "--artefact", "shout="+want.String(), "-o", "claim.json").must(t, "claim sign")
	return builder, want
}
