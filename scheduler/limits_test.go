package scheduler_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// testClock is a clock that stands still until a test moves it.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// serveLimited serves f's API on loopback with a real http.Server within
// limits, as `lantern scheduler` does, and returns its address.
func serveLimited(t *testing.T, f *farm, limits scheduler.HTTPLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := limits.Server(f.s.Handler())
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v", err)
		}
	})
	return ln.Addr().String()
}

// TestClaimFlood: one key posts 10,000 claims at once. Its burst is taken
// and the rest is refused with 429 and a Retry-After that is honest (after
// it, the key posts again); forged envelopes and replays of the key's own
// claims spend none of its claims; and GETs of an artefact, from another
// client meanwhile, are all answered.
func TestClaimFlood(t *testing.T) {
	clock := newTestClock()
	const perMinute = 600 // the default; the burst is as much
	f := newTunedFarm(t, natsq.Config{}, nil, func(c *scheduler.Config) {
		// The clock stands still: no claim comes back while the flood
		// runs, however long the machine takes over it.
		c.Now = clock.now
	}, builderA, builderB)
	addr := serveLimited(t, f, scheduler.HTTPLimits{})
	base := "http://" + addr
	post := func(c *http.Client, body []byte) (int, http.Header) {
		resp, err := c.Post(base+"/api/v1/claims", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("POST claim: %v", err)
			return 0, nil
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}

	// An artefact two builders reproduced, to GET: its claim takes one of
	// the key's claims.
	claim, job := sourceClaim(t, claimKey, "example.org/steady", lantern.Digest{})
	if code, _ := post(http.DefaultClient, claim); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	for _, b := range []*keys.Private{builderA, builderB} {
		if code := f.do("POST", "/api/v1/attestations", rebuilt(t, b, job, "steady output"), nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d, want 202", code)
		}
	}
	artefact := lantern.DigestOf([]byte("steady output"))
	eventually(t, "the verdict", func() bool { v := f.verdict(artefact); return v != nil && v.Status == lantern.StatusReproduced })

	// Nobody but the key's holder spends its claims: envelopes of it whose
	// signature is forged are refused as forged, and a replay of its claim
	// is a duplicate, however many come.
	env, err := dsse.Unmarshal(claim)
	if err != nil {
		t.Fatal(err)
	}
	env.Signatures[0].Sig[len(env.Signatures[0].Sig)/2] ^= 1
	forged, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	for i := range perMinute + 1 {
		if code, _ := post(http.DefaultClient, forged); code != http.StatusForbidden {
			t.Fatalf("POST forged claim %d = %d, want 403", i, code)
		}
		if code, _ := post(http.DefaultClient, claim); code != http.StatusOK {
			t.Fatalf("POST replayed claim %d = %d, want 200 (a duplicate)", i, code)
		}
	}

	const flood = 10000
	envs := make([][]byte, flood)
	for i := range envs {
		envs[i], _ = sourceClaim(t, claimKey, fmt.Sprintf("example.org/flood/c%d", i), lantern.Digest{})
	}

	// GETs from another client all through the flood.
	var gets, badGets atomic.Int64
	floodDone := make(chan struct{})
	firstGet := make(chan struct{})
	getDone := make(chan struct{})
	go func() {
		defer close(getDone)
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		for i := 0; ; i++ {
			finished := false
			select {
			case <-floodDone:
				finished = true // and one more GET after it
			default:
			}
			resp, err := c.Get(base + "/api/v1/artefacts/" + artefact.String())
			if err != nil {
				t.Errorf("GET artefact during the flood: %v", err)
				badGets.Add(1)
			} else {
				var v struct{ Verdicts []lantern.Verdict }
				err := json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil || len(v.Verdicts) == 0 || v.Verdicts[0].Status != lantern.StatusReproduced {
					t.Errorf("GET artefact during the flood = %d %v %+v, want 200 with its verdict", resp.StatusCode, err, v)
					badGets.Add(1)
				}
			}
			gets.Add(1)
			if i == 0 {
				close(firstGet)
			}
			if finished {
				return
			}
		}
	}()
	<-firstGet

	var (
		mu         sync.Mutex
		codes      = map[int]int{}
		retryAfter = 0
	)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			for {
				i := int(next.Add(1)) - 1
				if i >= flood {
					return
				}
				code, h := post(c, envs[i])
				mu.Lock()
				codes[code]++
				if code == http.StatusTooManyRequests {
					s, err := strconv.Atoi(h.Get("Retry-After"))
					if err != nil || s < 1 {
						t.Errorf("429 with Retry-After %q, want a number of seconds", h.Get("Retry-After"))
					}
					retryAfter = max(retryAfter, s)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(floodDone)
	<-getDone

	if want := map[int]int{http.StatusAccepted: perMinute - 1, http.StatusTooManyRequests: flood - perMinute + 1}; !mapsEqual(codes, want) {
		t.Errorf("answers to %d claims of one key = %v, want %v", flood, codes, want)
	}
	if gets.Load() < 2 || badGets.Load() > 0 {
		t.Errorf("%d GETs during the flood, %d failed; want them all answered", gets.Load(), badGets.Load())
	}
	t.Logf("%d GETs answered during the flood", gets.Load())

	// Retry-After is honest: once it has passed, the key posts again.
	clock.advance(time.Duration(retryAfter) * time.Second)
	again, _ := sourceClaim(t, claimKey, "example.org/after-the-flood", lantern.Digest{})
	if code, _ := post(http.DefaultClient, again); code != http.StatusAccepted {
		t.Errorf("POST claim %d s after the flood = %d, want 202", retryAfter, code)
	}
	if m := f.text(t, "/metrics"); !strings.Contains(m, fmt.Sprintf(`lantern_claims_total{result="limited"} %d`, flood-perMinute+1)) {
		t.Errorf("/metrics does not count %d claims limited:\n%s", flood-perMinute+1, grepLines(m, "lantern_claims_total"))
	}
}

// TestClaimantFloodOnNATS: claims a claimant publishes on NATS past its
// key's rate are dropped, not stored; the API's own claims (published on
// the API's subject) are not counted twice.
func TestClaimantFloodOnNATS(t *testing.T) {
	clock := newTestClock()
	const perMinute, burst = 1, 5
	f := newTunedFarm(t, natsq.Config{}, nil, func(c *scheduler.Config) {
		c.Now, c.ClaimsPerMinute, c.ClaimBurst = clock.now, perMinute, burst
	}, builderA)
	// The API takes burst-1 claims, then one over NATS spends the last.
	var jobs []lantern.Job
	for i := range burst - 1 {
		env, job := sourceClaim(t, claimKey, fmt.Sprintf("example.org/api/c%d", i), lantern.Digest{})
		if code := f.do("POST", "/api/v1/claims", env, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %d = %d, want 202", i, code)
		}
		jobs = append(jobs, job)
	}
	pub := f.claimant()
	const n = 20
	var natsJobs []lantern.Job
	for i := range n {
		env, job := sourceClaim(t, claimKey, fmt.Sprintf("example.org/nats/c%d", i), lantern.Digest{})
		if err := pub.PublishClaim(t.Context(), env); err != nil {
			t.Fatal(err)
		}
		natsJobs = append(natsJobs, job)
	}
	eventually(t, "the scheduler to take or refuse every claim", func() bool {
		m := f.text(t, "/metrics")
		return metric(m, `lantern_claims_total{result="accepted"}`)+metric(m, `lantern_claims_total{result="limited"}`) >= burst-1+n
	})
	m := f.text(t, "/metrics")
	if got := metric(m, `lantern_claims_total{result="limited"}`); got != n-1 {
		t.Errorf("%d claims limited, want %d:\n%s", got, n-1, grepLines(m, "lantern_claims_total"))
	}
	for _, j := range jobs {
		if code := f.do("GET", "/api/v1/jobs/"+j.ID, nil, nil); code != http.StatusOK {
			t.Errorf("job of an API claim: GET = %d, want 200 (counted once, at the API)", code)
		}
	}
	stored := 0
	for _, j := range natsJobs {
		if f.do("GET", "/api/v1/jobs/"+j.ID, nil, nil) == http.StatusOK {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d of %d claims published on NATS were taken, want 1 (the rest is past the key's rate)", stored, n)
	}
}

// metric returns the value of the Prometheus sample named name in text, or
// 0.
func metric(text, name string) int {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// TestSlowClientsCutOff: the API's server cuts off a client that sends its
// headers or its body slowly, and refuses headers that are too large. What
// is asserted is that the server closes the connection; how soon is the
// test's short timeout's business.
func TestSlowClientsCutOff(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	addr := serveLimited(t, f, scheduler.HTTPLimits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxHeaderBytes: 4096})
	claim, _ := sourceClaim(t, claimKey, "example.org/slow", lantern.Digest{})

	// trickle writes head, then the bytes of rest one a second, until the
	// server closes the connection; it returns what the server answered
	// and how many bytes of rest went out.
	trickle := func(head, rest string) (string, int) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		var sent atomic.Int64
		stop := make(chan struct{})
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := range len(rest) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{rest[i]}); err != nil {
					return
				}
				sent.Add(1)
			}
		}()
		// Not a timing assertion: only a bound on a test that would
		// otherwise hang if the server never let go.
		conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
		got, err := io.ReadAll(conn)
		close(stop)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept a slow client's connection open for 5 minutes (sent %d of %d bytes)", sent.Load(), len(rest))
		}
		return string(got), int(sent.Load())
	}

	t.Run("body", func(t *testing.T) {
		head := fmt.Sprintf("POST /api/v1/claims HTTP/1.1\r\nHost: farm\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(claim))
		got, sent := trickle(head, string(claim))
		if sent >= len(claim) {
			t.Fatalf("the whole body went out (%d bytes), one a second: the server did not cut the client off", sent)
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err != nil {
			t.Fatalf("answer to a slow body %q: %v", got, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("answer to a slow body = %d, want 408", resp.StatusCode)
		}
	})
	t.Run("headers", func(t *testing.T) {
		rest := "Host: farm\r\nContent-Type: application/json\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n"
		got, sent := trickle("GET /api/v1/builders HTTP/1.1\r\n", rest)
		if sent >= len(rest) {
			t.Fatalf("all headers went out (%d bytes), one a second: the server did not cut the client off", sent)
		}
		if strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Errorf("a request with slow headers was answered: %q", got)
		}
	})
	t.Run("large headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/builders", nil)
		req.Header.Set("X-Large", strings.Repeat("l", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET with 64 KiB of headers = %d, want 431", resp.StatusCode)
		}
	})
	// The server still serves.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz after the slow clients = %v, %v", resp, err)
	}
	resp.Body.Close()
}

// TestOutputsRemovedOnceReported: once the report on two outputs is made,
// the outputs are removed from the builders' buckets; their build logs and
// the report stay.
func TestOutputsRemovedOnceReported(t *testing.T) {
	d, err := diffoscope.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the diffoscope tests ('make diffoscope')", err)
		}
		t.Skip(err)
	}
	f := newDiffingFarm(t, natsq.Config{}, d, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/retained", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	outs := map[*keys.Private]string{builderA: "built at 1\n", builderB: "built at 2\n"}
	var logs []lantern.Digest
	for b, out := range outs {
		q := f.builder(b)
		if _, err := q.PutObject(t.Context(), "bin of "+job.ID, strings.NewReader(out)); err != nil {
			t.Fatal(err)
		}
		l, err := q.PutObject(t.Context(), natsq.LogPrefix+job.ID+" by "+b.ID().String(), strings.NewReader("log of "+out))
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
		if code := f.do("POST", "/api/v1/attestations", rebuilt(t, b, job, out), nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d, want 202", code)
		}
	}
	a, b := lantern.DigestOf([]byte(outs[builderA])), lantern.DigestOf([]byte(outs[builderB]))
	var rec scheduler.DiffRecord
	eventually(t, "the report", func() bool {
		return f.do("GET", "/api/v1/diffs/"+a.String()+"/"+b.String(), nil, &rec) == http.StatusOK && rec.State != scheduler.DiffPending
	})
	if rec.State != scheduler.DiffDone {
		t.Fatalf("report = %+v, want done", rec)
	}
	for _, out := range []lantern.Digest{a, b} {
		eventually(t, "output "+out.Short()+" to be removed", func() bool {
			rc, err := f.q.GetObject(t.Context(), out)
			if err == nil {
				rc.Close()
			}
			return errors.Is(err, lantern.ErrNoObject)
		})
	}
	for _, d := range append(logs, rec.Report) {
		rc, err := f.q.GetObject(t.Context(), d)
		if err != nil {
			t.Errorf("GetObject(%s) after the report = %v; logs and reports stay", d.Short(), err)
			continue
		}
		rc.Close()
	}
	// The report is still served.
	if r := f.text(t, "/api/v1/diffs/"+a.String()+"/"+b.String()+"/report"); !strings.Contains(r, "built at") {
		t.Errorf("report after its outputs went:\n%s", r)
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
