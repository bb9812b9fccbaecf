package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
)

// TestTwoSchedulersOnACluster: two `lantern scheduler` processes, each with
// a data directory and a store of its own, on a NATS cluster of three
// bin/nats-server processes. Both answer the API with the same verdicts.
// One is killed (kill -9) in the middle of a claim's ingest — it has
// queued the claim's job and not heard back — and the other finishes the
// ingest: the job is queued once. One is killed while diffoscope runs on
// a pair of outputs that builders disagree on; the other takes the run
// over after the ack wait and makes the report, once; the killed one,
// back, serves the same.
func TestTwoSchedulersOnACluster(t *testing.T) {
	if _, err := exec.LookPath("diffoscope"); err != nil && os.Getenv("CI") != "" {
		t.Fatalf("no diffoscope: %v\nCI must run the diffoscope tests ('make diffoscope')", err)
	} else if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	maint, alice, bob := newKey(t), newKey(t), newKey(t)
	putFile(t, dir, "maint.pub", string(maint.Public().MarshalPEM()))
	putFile(t, dir, "alice.pub", string(alice.Public().MarshalPEM()))
	putFile(t, dir, "bob.pub", string(bob.Public().MarshalPEM()))
	runLantern(t, dir, nil, "builder", "add", "alice", "alice.pub", "--data", data).must(t, "builder add alice")
	runLantern(t, dir, nil, "builder", "add", "bob", "bob.pub", "--data", data).must(t, "builder add bob")
	c := startNATSCluster(t, dir, data)
	// The second scheduler's machine: the farm's NATS identities and
	// builders, as its operator copies them; no store, no name yet.
	data2 := filepath.Join(dir, "data2")
	if err := os.CopyFS(data2, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	// A's diffoscope holds on a label named hold-me, as a long run does;
	// it is diffoscope for everything else (its --version at start).
	standIn := putFile(t, dir, "diffoscope-hold", "#!/bin/sh\ncase \"$*\" in *hold-me*) exec sleep 987654 ;; esac\nexec /usr/bin/diffoscope \"$@\"\n")
	if err := os.Chmod(standIn, 0o755); err != nil {
		t.Fatal(err)
	}
	common := []string{"--nats-replicas", "3", "--claim-key", "maint.pub", "--threshold", "2", "--ack-wait", "5s"}
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// A reaches the cluster through a proxy that can hold what the
	// cluster says to it.
	proxy := newHoldProxy(t, c.nodes[0].url)
	startA := func(nats string, extra ...string) (*lanternProc, *farmAPI) {
		p := startLanternProc(t, dir, append([]string{"scheduler", "--data", data, "--scheduler-name", "a", "--nats", nats, "--listen", addrA}, append(common, extra...)...)...)
		api := &farmAPI{t: t, base: "http://" + addrA, logs: p.log}
		api.waitHealthy(2 * time.Minute)
		return p, api
	}
	startB := func(extra ...string) (*lanternProc, *farmAPI) {
		p := startLanternProc(t, dir, append([]string{"scheduler", "--data", data2, "--nats", c.urls(), "--listen", addrB}, append(common, extra...)...)...)
		api := &farmAPI{t: t, base: "http://" + addrB, logs: p.log}
		api.waitHealthy(2 * time.Minute)
		return p, api
	}
	procA, apiA := startA(proxy.url(), "--diffoscope", standIn)
	procB, apiB := startB("--diffoscope", "none")
	if name := strings.TrimSpace(readFile(t, filepath.Join(data2, "scheduler-name"))); !strings.HasPrefix(name, "s-") {
		t.Errorf("B's name kept in its data directory = %q, want one made, s-...", name)
	}
	js := adminJetStream(t, data, c.urls())
	builders := map[*keys.Private]*natsq.Queue{
		alice: builderQueue(t, dir, "alice", alice, c.urls()),
		bob:   builderQueue(t, dir, "bob", bob, c.urls()),
	}

	// Both answer with the same verdicts: a claim posted to A, another to
	// B; alice and bob agree on the first and disagree on the second.
	env1, job1 := clusterClaim(t, maint, "example.org/agreed", "tool")
	env2, job2 := clusterClaim(t, maint, "example.org/split", "tool")
	apiA.postClaim(string(env1))
	apiB.postClaim(string(env2))
	for _, j := range []lantern.Job{job1, job2} {
		for _, api := range []*farmAPI{apiA, apiB} {
			waitOK(t, api, "/api/v1/jobs/"+j.ID)
		}
	}
	publishRebuild(t, builders[alice], alice, job1, "tool", "same bytes")
	publishRebuild(t, builders[bob], bob, job1, "tool", "same bytes")
	publishRebuild(t, builders[alice], alice, job2, "tool", "alice's bytes")
	publishRebuild(t, builders[bob], bob, job2, "tool", "bob's bytes")
	for _, j := range []lantern.Job{job1, job2} {
		path := "/api/v1/sources/" + j.Source.String()
		waitUntil(t, "both schedulers to agree on "+j.Source.Name, func() bool {
			a, b := verdictsOf(t, apiA, path, 2), verdictsOf(t, apiB, path, 2)
			return a != "" && a == b
		})
	}
	if v := apiB.source(job1.Source.String()).Verdicts; len(v) != 1 || v[0].Status != lantern.StatusReproduced {
		t.Errorf("B's verdict on %s = %+v, want reproduced", job1.Source, v)
	}
	if v := apiA.source(job2.Source.String()).Verdicts; len(v) != 1 || v[0].Status != lantern.StatusMismatch {
		t.Errorf("A's verdict on %s = %+v, want mismatch", job2.Source, v)
	}

	// kill -9 of A in the middle of a claim's ingest: the proxy holds
	// back the stream's answer to A's publish of the claim's job, so A has
	// queued the job and not stored the claim.
	env3, job3 := clusterClaim(t, maint, "example.org/ingested", "tool")
	proxy.holdOn([]byte(`"stream":"` + natsq.StreamJobs + `"`))
	apiA.postClaim(string(env3))
	<-proxy.held
	if code, _ := apiA.do("GET", "/api/v1/jobs/"+job3.ID, ""); code != http.StatusNotFound {
		t.Fatalf("A, held after queuing the job, has stored the claim: GET its job = %d, want 404", code)
	}
	t.Logf("A (pid %d) holds claim %s's ingest after publishing its job: kill -9", procA.cmd.Process.Pid, job3.Source)
	procA.cmd.Process.Kill()
	<-procA.exited
	waitOK(t, apiB, "/api/v1/jobs/"+job3.ID)
	t.Logf("B has job %s; the jobs stream holds it %d time(s)", job3.ID, subjectMsgs(t, js, natsq.StreamJobs, natsq.SubjectJobs+".*."+job3.ID))
	if n := subjectMsgs(t, js, natsq.StreamJobs, natsq.SubjectJobs+".*."+job3.ID); n != 1 {
		t.Errorf("job %s is %d times on the jobs stream, want once", job3.ID, n)
	}

	// A comes back (through the proxy, now letting everything through)
	// and finishes its own ingest; nothing is queued again.
	proxy.holdOn(nil)
	procA, apiA = startA(proxy.url(), "--diffoscope", standIn)
	waitOK(t, apiA, "/api/v1/jobs/"+job3.ID)
	if n := subjectMsgs(t, js, natsq.StreamJobs, natsq.SubjectJobs+".>"); n != 3 {
		t.Errorf("the jobs stream has %d jobs for 3 claims, want 3", n)
	}

	// kill -9 of A in the middle of a diffoscope run. B, without a
	// diffoscope until then, cannot have taken it; A holds it with its
	// heartbeats past the ack wait; B, restarted with diffoscope, takes it
	// only once A is killed.
	env4, job4 := clusterClaim(t, maint, "example.org/stamped", "hold-me")
	apiA.postClaim(string(env4))
	waitOK(t, apiA, "/api/v1/jobs/"+job4.ID)
	waitOK(t, apiB, "/api/v1/jobs/"+job4.ID)
	outA, outB := "built at 1\nsame\n", "built at 2\nsame\n"
	for b, out := range map[*keys.Private]string{alice: outA, bob: outB} {
		if _, err := builders[b].PutObject(t.Context(), "hold-me", strings.NewReader(out)); err != nil {
			t.Fatal(err)
		}
		publishRebuild(t, builders[b], b, job4, "hold-me", out)
	}
	holder := waitForProcess(t, "sleep\x00987654")
	if !descendsFrom(holder, procA.cmd.Process.Pid) {
		t.Fatalf("the held diffoscope (pid %d) is not A's", holder)
	}
	if err := procB.stop(t, 60*time.Second); err != nil {
		t.Fatalf("stop B: %v\n%s", err, procB.log)
	}
	procB, apiB = startB()
	t.Logf("A (pid %d) runs diffoscope (held, pid %d) on %s: kill -9", procA.cmd.Process.Pid, holder, job4.Source)
	procA.cmd.Process.Kill()
	<-procA.exited
	a, b := lantern.DigestOf([]byte(outA)), lantern.DigestOf([]byte(outB))
	diffPath := "/api/v1/diffs/" + a.String() + "/" + b.String()
	var recB diffView
	waitUntil(t, "B to make the report", func() bool {
		code, body := apiB.do("GET", diffPath, "")
		return code == http.StatusOK && json.Unmarshal(body, &recB) == nil && recB.State != "pending"
	})
	if recB.State != "done" {
		t.Fatalf("B's report = %+v, want done\n%s", recB, procB.log)
	}
	_, report := apiB.do("GET", diffPath+"/report", "")
	if !bytes.Contains(report, []byte("built at 1")) || !bytes.Contains(report, []byte("built at 2")) {
		t.Errorf("B's report is not diffoscope's on the two outputs:\n%s", report)
	}
	t.Logf("B made the report: %+v", recB)
	procA, apiA = startA(c.urls(), "--diffoscope", "none")
	var recA diffView
	waitUntil(t, "A to serve the report", func() bool {
		code, body := apiA.do("GET", diffPath, "")
		return code == http.StatusOK && json.Unmarshal(body, &recA) == nil && recA.State != "pending"
	})
	if recA != recB {
		t.Errorf("A's report record = %+v, B's = %+v; want the same", recA, recB)
	}
	// job2's pair (failed: its outputs were never uploaded) and job4's.
	waitUntil(t, "a report made on each pair", func() bool { return subjectMsgs(t, js, natsq.StreamDiffs, natsq.SubjectDiffsMade+".>") >= 2 })
	if n := subjectMsgs(t, js, natsq.StreamDiffs, natsq.SubjectDiffsMade+".>"); n != 2 {
		t.Errorf("%d reports made on the stream, want 2 (one per pair):\n%s", n, dumpStream(t, js, natsq.StreamDiffs))
	}
	if n := strings.Count(procB.log.String(), "difference report made"); n != 1 {
		t.Errorf("B made %d reports, want 1\n%s", n, procB.log)
	}
	for _, j := range []lantern.Job{job1, job2, job4} { // job3 has no rebuilds
		path := "/api/v1/sources/" + j.Source.String()
		waitUntil(t, "both schedulers to agree on "+j.Source.Name+" at the end", func() bool {
			a, b := verdictsOf(t, apiA, path, 2), verdictsOf(t, apiB, path, 2)
			return a != "" && a == b
		})
	}
	for _, p := range []*lanternProc{procA, procB} {
		if err := p.stop(t, 60*time.Second); err != nil {
			t.Errorf("stop: %v\n%s", err, p.log)
		}
	}
}

type diffView struct {
	State  string
	Report lantern.Digest
	Reason string
}

func newKey(t *testing.T) *keys.Private {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clusterClaim signs, as k, a claim of name built by the generic recipe
// into output.
func clusterClaim(t *testing.T, k *keys.Private, name, output string) ([]byte, lantern.Job) {
	t.Helper()
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: "1.0", Digest: lantern.DigestOf([]byte(name + " tarball"))},
		Fetch:  "https://example.org/" + name + ".tar.gz",
		Recipe: lantern.RecipeGeneric,
		Build: &lantern.BuildSpec{
			Image:    "registry.example/builder@sha256:" + strings.Repeat("ab", 32),
			Commands: []string{"make"},
			Outputs:  map[string]string{output: output},
		},
		Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	env, err := attest.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b, lantern.JobFromClaim(c, b, k.ID())
}

// publishRebuild signs, as builder k, a rebuild of job's label to output,
// and publishes it as k's workers do.
func publishRebuild(t *testing.T, q *natsq.Queue, k *keys.Private, job lantern.Job, label, output string) {
	t.Helper()
	generic, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	r := &lantern.Rebuild{
		Source: job.Source, Label: label, Output: lantern.DigestOf([]byte(output)),
		Recipe: generic.Ref(), Builder: k.ID(), Claim: job.Claim, Build: job.Build.Digest(), JobID: job.ID,
		Started: time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC), Finished: time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC),
	}
	env, err := attest.Sign(r, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.PublishResult(t.Context(), k.ID(), b); err != nil {
		t.Fatalf("publish %s's result: %v", k.ID().Short(), err)
	}
}

// builderQueue connects as builder k with the credentials `lantern
// builder add NAME` wrote in dir.
func builderQueue(t *testing.T, dir, name string, k *keys.Private, urls string) *natsq.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	q, err := natsq.Connect(ctx, urls, natsq.Config{Role: natsq.RoleBuilder, Builder: k.ID(), Creds: filepath.Join(dir, name+".creds")}, nil)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// adminJetStream connects with the farm's scheduler credentials, to count
// what the streams hold.
func adminJetStream(t *testing.T, data, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls, nats.UserCredentials(filepath.Join(data, "nats-auth", "scheduler.creds")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// subjectMsgs counts the messages of stream on subjects matching filter.
func subjectMsgs(t *testing.T, js jetstream.JetStream, stream, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// dumpStream returns every message of stream, for a failure's message.
func dumpStream(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		if m, err := s.GetMsg(t.Context(), seq); err == nil {
			fmt.Fprintf(&b, "%d %s %s\n", seq, m.Subject, m.Data)
		}
	}
	return b.String()
}

// waitUntil polls cond until it holds, failing after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitOK(t *testing.T, api *farmAPI, path string) {
	t.Helper()
	waitUntil(t, "GET "+path+" from "+api.base, func() bool {
		code, _ := api.do("GET", path, "")
		return code == http.StatusOK
	})
}

// verdictsOf is what api says of a source's verdicts; "" until its first
// counts builders rebuilds.
func verdictsOf(t *testing.T, api *farmAPI, path string, builders int) string {
	t.Helper()
	code, b := api.do("GET", path, "")
	if code != http.StatusOK {
		return ""
	}
	var v struct {
		Verdicts []lantern.Verdict `json:"verdicts"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Verdicts) == 0 {
		return ""
	}
	n := 0
	for _, g := range v.Verdicts[0].Groups {
		n += len(g.Builders)
	}
	if n != builders {
		return ""
	}
	out, _ := json.Marshal(v.Verdicts)
	return string(out)
}

// waitForProcess returns the pid of the process whose command line (its
// arguments joined by NULs) contains cmdline, once there is one.
func waitForProcess(t *testing.T, cmdline string) int {
	t.Helper()
	var pid int
	waitUntil(t, "a process "+strconv.Quote(cmdline), func() bool {
		ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, m := range ms {
			if b, err := os.ReadFile(m); err == nil && bytes.Contains(b, []byte(cmdline)) {
				pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(m)))
				return true
			}
		}
		return false
	})
	return pid
}

// descendsFrom reports whether process pid is a descendant of ancestor.
func descendsFrom(pid, ancestor int) bool {
	for pid > 1 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...: comm may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
		if pid == ancestor {
			return true
		}
	}
	return false
}

// holdProxy forwards TCP connections to a NATS server, and can hold back
// what the server says once it has said a given thing: a deterministic
// "in the middle" for a kill -9.
type holdProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	held   chan struct{} // receives once per hold

	mu     sync.Mutex
	marker []byte
}

func newHoldProxy(t *testing.T, natsURL string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{t: t, ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), held: make(chan struct{}, 1)}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *holdProxy) url() string { return "nats://" + p.ln.Addr().String() }

// holdOn makes the proxy hold back everything the server says to a
// client from the first read that holds marker on (nil: hold nothing), on
// connections made from now on and those there.
func (p *holdProxy) holdOn(marker []byte) {
	p.mu.Lock()
	p.marker = marker
	p.mu.Unlock()
}

func (p *holdProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() {
			io.Copy(s, c)
			s.Close()
		}()
		go func() {
			defer c.Close()
			var tail []byte
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					p.mu.Lock()
					marker := p.marker
					p.mu.Unlock()
					window := append(tail, buf[:n]...)
					if marker != nil && bytes.Contains(window, marker) {
						p.held <- struct{}{}
						io.Copy(io.Discard, s) // held: nothing more reaches the client
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
					tail = append(tail[:0], window[max(0, len(window)-256):]...)
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestSchedulerName: a scheduler's name is one NATS takes in a consumer's
// name; a bad one on the command line is a usage error, and one kept in
// the data directory that went bad stops the scheduler, saying where.
func TestSchedulerName(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, bad := range []string{"a.b", "a b", "*", ">", strings.Repeat("x", 33)} {
		runLantern(t, dir, nil, "scheduler", "--data", data, "--scheduler-name", bad, "--listen", "127.0.0.1:0").fails(t, "--scheduler-name "+bad, 2, "--scheduler-name")
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	putFile(t, data, "scheduler-name", "two.words\n")
	r := runLantern(t, dir, nil, "scheduler", "--data", data, "--nats-listen", "127.0.0.1:0", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--diffoscope", "none")
	r.fails(t, "a bad name kept in DATA", 1, filepath.Join(data, "scheduler-name"))
}
