package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/goproxy"
)

// farmScript is a farm's API as rebuild --wait reads it, answering poll n
// with states[min(n, last)]: a hand-written stand-in for the scheduler's
// API, whose real answers TestUp follows to a verdict.
type farmScript struct {
	mu     sync.Mutex
	polls  int
	states []farmState
	// claim is listed among the source's claims from poll claimAt on.
	claim   lantern.Digest
	claimAt int
}

type farmState struct {
	builders map[lantern.Digest]builderJob
	verdicts []lantern.Verdict
}

func (f *farmScript) serve(t *testing.T, job, source string, names map[lantern.Digest]string) *httptest.Server {
	t.Helper()
	created := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	mux := http.NewServeMux()
	state := func() farmState {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.states[min(f.polls, len(f.states)-1)]
	}
	mux.HandleFunc("GET /api/v1/jobs/"+job, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jobStatus{Created: created, Builders: state().builders})
	})
	mux.HandleFunc("GET /api/v1/sources/"+source, func(w http.ResponseWriter, r *http.Request) {
		sv := sourceVerdicts{Verdicts: state().verdicts}
		f.mu.Lock()
		if !f.claim.IsZero() && f.polls >= f.claimAt {
			sv.Claims = append(sv.Claims, struct{ Envelope lantern.Digest }{f.claim})
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(sv)
		f.mu.Lock()
		f.polls++ // the last request of a poll
		f.mu.Unlock()
	})
	mux.HandleFunc("GET /api/v1/builders", func(w http.ResponseWriter, r *http.Request) {
		var bs []map[string]any
		for id, name := range names {
			bs = append(bs, map[string]any{"id": id, "name": name})
		}
		json.NewEncoder(w).Encode(map[string]any{"builders": bs})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestRebuildWait(t *testing.T) {
	old := pollEvery
	pollEvery = time.Millisecond
	t.Cleanup(func() { pollEvery = old })

	const job, source = "j0123", "example.org/hello@v1.0.0"
	b1, b2 := lantern.DigestOf([]byte("builder 1")), lantern.DigestOf([]byte("builder 2"))
	names := map[lantern.Digest]string{b1: "builder-1", b2: "builder-2"}
	out1, out2 := lantern.DigestOf([]byte("output 1")), lantern.DigestOf([]byte("output 2"))
	at := time.Date(2026, 11, 30, 10, 2, 5, 0, time.UTC)
	queued := map[lantern.Digest]builderJob{b1: {State: "queued"}, b2: {State: "queued"}}
	done := map[lantern.Digest]builderJob{b1: {State: "done", Updated: at}, b2: {State: "done", Updated: at}}
	verdict := func(s lantern.Status, threshold int, groups ...lantern.Group) lantern.Verdict {
		return lantern.Verdict{Source: lantern.Source{Name: "example.org/hello", Version: "v1.0.0"}, Label: "hello", Job: job, Status: s, Threshold: threshold, Groups: groups}
	}
	both := lantern.Group{Output: out1, Builders: []lantern.Digest{b1, b2}}
	// Another claimer's job of the same source: its verdict is not this rebuild's.
	other := verdict(lantern.StatusMismatch, 2, lantern.Group{Output: out2, Builders: []lantern.Digest{b1}})
	other.Job = "jother"

	for _, tc := range []struct {
		name   string
		wait   time.Duration
		states []farmState
		code   int
		want   []string // on stdout
		err    string
	}{
		{"reproduced", time.Minute, []farmState{
			{queued, nil},
			{map[lantern.Digest]builderJob{b1: {State: "done", Updated: at}, b2: {State: "queued"}}, []lantern.Verdict{verdict(lantern.StatusPending, 2, lantern.Group{Output: out1, Builders: []lantern.Digest{b1}}), other}},
			{done, []lantern.Verdict{verdict(lantern.StatusReproduced, 2, both), other}},
		}, 0, []string{source + " hello: reproduced", out1.String() + "  built by 2", "dashboard: "}, ""},
		{"mismatch", time.Minute, []farmState{
			{done, []lantern.Verdict{verdict(lantern.StatusMismatch, 2, lantern.Group{Output: out1, Builders: []lantern.Digest{b1}}, lantern.Group{Output: out2, Builders: []lantern.Digest{b2}})}},
		}, 3, []string{source + " hello: mismatch", out2.String() + "  built by 1"}, "contradicted: hello mismatch"},
		{"failed", time.Minute, []farmState{
			{map[lantern.Digest]builderJob{b1: {State: "failed", Reason: "build: exit 1", Updated: at}, b2: {State: "dead", Updated: at}},
				[]lantern.Verdict{verdict(lantern.StatusFailed, 2)}},
		}, 1, []string{source + " hello: failed"}, "not reproduced: hello failed"},
		{"too few builders to agree", time.Minute, []farmState{
			{map[lantern.Digest]builderJob{b1: {State: "done", Updated: at}}, []lantern.Verdict{verdict(lantern.StatusPending, 2, lantern.Group{Output: out1, Builders: []lantern.Digest{b1}})}},
		}, 1, []string{source + " hello: pending"}, "the verdict needs 2 to agree"},
		{"out of time", 20 * time.Millisecond, []farmState{{queued, nil}}, 1, []string{"dashboard: "}, "no verdict within 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farm := (&farmScript{states: tc.states}).serve(t, job, source, names)
			var out, errb bytes.Buffer
			r := rebuildRun{api: farm.URL, source: source, job: job}
			err := r.wait(t.Context(), &stdio{out: &out, err: &errb}, tc.wait, false)
			if code := exitCode(&bytes.Buffer{}, err); code != tc.code || (tc.err != "" && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("wait = %v (exit %d), want exit %d saying %q", err, code, tc.code, tc.err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("wait printed %q, want %q in it", out.String(), w)
				}
			}
			if strings.Contains(out.String(), out2.String()) && tc.name == "reproduced" {
				t.Errorf("wait printed another claimer's verdict: %q", out.String())
			}
			if !strings.Contains(out.String(), "dashboard: "+farm.URL+"/sources/"+source) {
				t.Errorf("wait printed %q, want the dashboard's page of the source", out.String())
			}
			// Progress, not a terminal: one line per change of a builder's state.
			for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
				if strings.Count(errb.String(), l[len("15:04:05"):]) != 1 {
					t.Errorf("progress line %q printed more than once:\n%s", l, errb.String())
				}
			}
			if tc.name == "reproduced" && (!strings.Contains(errb.String(), "builder-1 queued") || !strings.Contains(errb.String(), "builder-2 done after 2m5s")) {
				t.Errorf("progress %q, want each builder's states, with the time it took", errb.String())
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		farm := (&farmScript{states: []farmState{{done, []lantern.Verdict{verdict(lantern.StatusMismatch, 2)}}}}).serve(t, job, source, names)
		var out bytes.Buffer
		r := rebuildRun{api: farm.URL, source: source, job: job, claim: lantern.DigestOf([]byte("claim"))}
		err := r.wait(t.Context(), &stdio{out: &out, err: &bytes.Buffer{}}, time.Minute, true)
		var ce *contradictedError
		if !errors.As(err, &ce) {
			t.Errorf("wait = %v, want a contradiction", err)
		}
		var res rebuildResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("--json printed %q: %v", out.String(), err)
		}
		if res.Status != "contradicted" || res.Job != job || res.Claim != r.claim || len(res.Verdicts) != 1 || res.Dashboard != farm.URL+"/sources/"+source || res.Error == "" {
			t.Errorf("--json printed %+v, want the contradicted verdict, the job, claim and dashboard", res)
		}
	})
}

// TestRebuildWaitJoined: a claim that joins a job whose builders are all
// done (a published artefact compared with rebuilds made for another
// claim) is waited for until the farm stores it and its verdict is there;
// the builders having answered says nothing of it before.
func TestRebuildWaitJoined(t *testing.T) {
	old := pollEvery
	pollEvery = time.Millisecond
	t.Cleanup(func() { pollEvery = old })
	const job, source = "j0123", "example.org/hello@v1.0.0"
	b1, b2 := lantern.DigestOf([]byte("builder 1")), lantern.DigestOf([]byte("builder 2"))
	out1, published := lantern.DigestOf([]byte("output 1")), lantern.DigestOf([]byte("published"))
	done := map[lantern.Digest]builderJob{b1: {State: "done"}, b2: {State: "done"}}
	verdict := func(p lantern.Digest) lantern.Verdict {
		v := lantern.Decide(lantern.Source{Name: "example.org/hello", Version: "v1.0.0"}, "hello", p, 2,
			[]lantern.Outcome{{Builder: b1, Output: out1}, {Builder: b2, Output: out1}})
		v.Job = job
		return v
	}
	// Polls 0 to 9: the other claim's verdict only; from 10 on, this
	// claim's too, a mismatch against what it publishes.
	states := make([]farmState, 10, 11)
	for i := range states {
		states[i] = farmState{done, []lantern.Verdict{verdict(lantern.Digest{})}}
	}
	states = append(states, farmState{done, []lantern.Verdict{verdict(lantern.Digest{}), verdict(published)}})
	claim := lantern.DigestOf([]byte("claim"))
	farm := (&farmScript{states: states, claim: claim, claimAt: 10}).serve(t, job, source, nil)
	r := rebuildRun{api: farm.URL, source: source, job: job, claim: claim, published: map[string]lantern.Digest{"hello": published}}
	err := r.wait(t.Context(), &stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, time.Minute, false)
	if code := exitCode(&bytes.Buffer{}, err); code != 3 || !strings.Contains(err.Error(), "mismatch against the published artefact") {
		t.Errorf("wait = %v (exit %d), want exit 3, a mismatch against the published artefact", err, code)
	}
}

// TestJobProgressTerminal: on a terminal the lines are redrawn in place,
// with the time each builder has taken so far.
func TestJobProgressTerminal(t *testing.T) {
	var w bytes.Buffer
	p := &jobProgress{w: &w, tty: true, source: "s@v1", job: "j1", last: map[lantern.Digest]string{}}
	b1 := lantern.DigestOf([]byte("b1"))
	created := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	names := map[lantern.Digest]string{b1: "builder-1"}
	p.show(&jobStatus{Created: created, Builders: map[lantern.Digest]builderJob{b1: {State: "queued"}}}, names, created.Add(5*time.Second))
	first := w.String()
	if strings.Contains(first, "\x1b[") && strings.Index(first, "\x1b[2K") != strings.Index(first, "\x1b[") {
		t.Errorf("the first drawing moves the cursor up: %q", first)
	}
	w.Reset()
	p.show(&jobStatus{Created: created, Builders: map[lantern.Digest]builderJob{b1: {State: "done", Updated: created.Add(90 * time.Second)}}}, names, created.Add(2*time.Minute))
	second := w.String()
	if !strings.HasPrefix(second, "\x1b[2A") || !strings.Contains(second, "builder-1      done      1m30s") {
		t.Errorf("the second drawing = %q, want the cursor back up 2 lines and builder-1 done in 1m30s", second)
	}
	if !strings.Contains(first, "builder-1      queued    5s") {
		t.Errorf("the first drawing = %q, want builder-1 queued for 5s", first)
	}
}

// TestRebuildWaitHostileFarm: what a farm answers during --wait decides
// rebuild's exit only for the job rebuild posted, and only once every label
// of that job has a verdict; a farm that never answers cannot hold rebuild
// past its time, and nothing a farm says drives the terminal.
func TestRebuildWaitHostileFarm(t *testing.T) {
	old := pollEvery
	pollEvery = time.Millisecond
	t.Cleanup(func() { pollEvery = old })

	const job, source = "j0123", "example.org/hello@v1.0.0"
	b1, b2 := lantern.DigestOf([]byte("builder 1")), lantern.DigestOf([]byte("builder 2"))
	names := map[lantern.Digest]string{b1: "builder-1", b2: "builder-2"}
	out1 := lantern.DigestOf([]byte("output 1"))
	at := time.Date(2026, 11, 30, 10, 2, 5, 0, time.UTC)
	done := map[lantern.Digest]builderJob{b1: {State: "done", Updated: at}, b2: {State: "done", Updated: at}}
	reproduced := func(label, job string) lantern.Verdict {
		return lantern.Verdict{Source: lantern.Source{Name: "example.org/hello", Version: "v1.0.0"}, Label: label, Job: job, Status: lantern.StatusReproduced, Threshold: 2,
			Groups: []lantern.Group{{Output: out1, Builders: []lantern.Digest{b1, b2}}}}
	}
	labels := []string{"hello-linux-amd64", "hello-windows-amd64.exe"}

	for _, tc := range []struct {
		name     string
		verdicts []lantern.Verdict
		code     int
		err      string
	}{
		// A farm that has decided one platform's label (the other's
		// attestations not in yet), or that leaves one out.
		{"one label of two", []lantern.Verdict{reproduced("hello-linux-amd64", job)}, 1, "hello-windows-amd64.exe pending"},
		// A verdict that names no job is not this job's.
		{"a verdict of no job", []lantern.Verdict{reproduced("hello-linux-amd64", ""), reproduced("hello-windows-amd64.exe", "")}, 1, "not reproduced"},
		{"both labels", []lantern.Verdict{reproduced("hello-linux-amd64", job), reproduced("hello-windows-amd64.exe", job)}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farm := (&farmScript{states: []farmState{{done, tc.verdicts}}}).serve(t, job, source, names)
			r := rebuildRun{api: farm.URL, source: source, job: job, labels: labels}
			err := r.wait(t.Context(), &stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, 50*time.Millisecond, false)
			if code := exitCode(&bytes.Buffer{}, err); code != tc.code || (tc.err != "" && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("wait = %v (exit %d), want exit %d saying %q", err, code, tc.code, tc.err)
			}
		})
	}

	t.Run("a farm that never answers", func(t *testing.T) {
		oldAnswer := farmAnswerTime
		farmAnswerTime = 10 * time.Millisecond
		t.Cleanup(func() { farmAnswerTime = oldAnswer })
		release := make(chan struct{})
		farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("{"))
			w.(http.Flusher).Flush()
			select { // a byte, then nothing more
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(farm.Close)
		t.Cleanup(func() { close(release) })
		errc := make(chan error, 1)
		go func() {
			r := rebuildRun{api: farm.URL, source: source, job: job, labels: labels}
			errc <- r.wait(t.Context(), &stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, 10*time.Millisecond, false)
		}()
		select {
		case err := <-errc:
			if code := exitCode(&bytes.Buffer{}, err); code != 1 || !strings.Contains(err.Error(), "no verdict within") {
				t.Errorf("wait = %v (exit %d), want exit 1: no verdict within its time", err, code)
			}
		case <-time.After(2 * time.Minute): // far past its 10ms and the farm's 10ms more
			t.Fatal("wait still waits for a farm that never answers, two minutes after its 10ms ran out")
		}
	})

	t.Run("control characters", func(t *testing.T) {
		const evil = "\x1b[2J\x1b[H\r\nexample.org/hello@v1.0.0 hello-linux-amd64: reproduced\u202e"
		failed := lantern.Verdict{Source: lantern.Source{Name: "example.org/hello", Version: "v1.0.0"}, Label: "hello-linux-amd64" + evil, Job: job,
			Status: lantern.StatusFailed + lantern.Status(evil), Threshold: 2, Failures: []lantern.Outcome{{Builder: b1, Reason: "build: " + evil}}}
		bad := map[lantern.Digest]builderJob{b1: {State: "failed" + evil, Reason: evil, Updated: at}}
		farm := (&farmScript{states: []farmState{{bad, []lantern.Verdict{failed}}}}).serve(t, job, source, map[lantern.Digest]string{b1: "builder-1" + evil})
		var out, errb bytes.Buffer
		r := rebuildRun{api: farm.URL, source: source, job: job}
		err := r.wait(t.Context(), &stdio{out: &out, err: &errb}, 50*time.Millisecond, false)
		var msg bytes.Buffer
		exitCode(&msg, err)
		for what, s := range map[string]string{"stdout": out.String(), "progress": errb.String(), "the error": msg.String()} {
			if strings.ContainsAny(s, "\x1b\r\u202e") {
				t.Errorf("%s holds a farm's control characters: %q", what, s)
			}
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, source+" hello-linux-amd64: reproduced") {
					t.Errorf("%s holds a line the farm wrote: %q", what, s)
				}
			}
		}
	})
}

// TestClaimJob: the job rebuild expects the farm to answer is the one its
// signed claim makes, read back as the farm reads it, for a go claim with a
// Go release and platforms and for a tarball's.
func TestClaimJob(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	spec := &lantern.BuildSpec{Image: "registry.example/builder@sha256:" + strings.Repeat("a", 64), Commands: []string{"make"}, Outputs: map[string]string{"hello": "hello"}}
	for name, c := range map[string]*lantern.SourceClaim{
		"go": goSource{Package: "golang.org/x/tools/cmd/stringer", Module: goproxy.Module{Path: "golang.org/x/tools", Version: "v0.30.0",
			Zip: lantern.DigestOf([]byte("zip")), Sum: "h1:" + strings.Repeat("A", 43) + "=", URL: "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip"},
			Build: &lantern.GoBuild{Version: "1.23.4", Platforms: []string{"linux/arm64", "windows/amd64"}}}.claim(at),
		"tarball": tarballClaim("example.org/hello", "1.0", "https://example.org/hello-1.0.tar.gz", lantern.DigestOf([]byte("tarball")), spec, at),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := signClaim(&stdio{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, c, k, "", "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := claimJob(b, k.Public())
			if err != nil {
				t.Fatal(err)
			}
			if want := lantern.JobFromClaim(c, b, k.ID()); got.ID != want.ID || got.Claim != lantern.DigestOf(b) {
				t.Errorf("claimJob = %s (claim %s), want %s (claim %s)", got.ID, got.Claim, want.ID, lantern.DigestOf(b))
			}
			labels, err := jobLabels(got)
			if err != nil || len(labels) == 0 {
				t.Errorf("jobLabels = %q, %v; want the labels of its build", labels, err)
			}
		})
	}
}
