package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
)

// TestThreeMachines runs a farm on three machines: the scheduler and two
// workers, each in a network namespace of its own, on a LAN the test makes
// (a bridge in a namespace of its own, a veth pair from each machine to
// it, and one from the test's namespace, which reaches the scheduler's API
// and NATS over it). The bus is TLS, with the CA the scheduler made, which
// `lantern builder add` put into each builder's credentials. The workers
// reach the Go module proxy and checksum database only through an HTTP
// CONNECT proxy that the test runs on its address on the LAN: port 443 only.
//
// Both builders rebuild stringer and agree. Then one is removed with
// `lantern builder remove`: the farm's NATS closes its connection and
// refuses its credentials, its job consumer goes, a new claim is answered
// by the other builder alone, and its earlier attestation is shown as from
// a revoked builder.
func TestThreeMachines(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds stringer three times in BuildKit, in network namespaces: minutes")
	}
	buildkitd := buildkittest.Require(t)
	start := time.Now()
	dir := t.TempDir()
	lan := newLAN(t)
	t.Logf("lan %s: test %s, scheduler %s, w1 %s, w2 %s", lan.subnet, lan.hostIP, lan.ip["sched"], lan.ip["w1"], lan.ip["w2"])

	proxy := startConnectProxy(t, lan.hostIP)
	schedIP := lan.ip["sched"]
	apiAddr := net.JoinHostPort(schedIP, "8080")
	// The machines have no way out but the proxy, which goes to port 443
	// only.
	for _, m := range []string{"sched", "w1", "w2"} {
		if out, err := exec.Command(lan.ipCmd, "-n", lan.ns[m], "route", "show", "default").CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("machine %s has a default route: %q %v", m, out, err)
		}
	}
	for _, req := range []string{"CONNECT " + apiAddr + " HTTP/1.1\r\nHost: " + apiAddr, "GET http://" + apiAddr + "/healthz HTTP/1.1\r\nHost: " + apiAddr} {
		if status := proxy.try(t, req); status != "HTTP/1.1 403 Forbidden" {
			t.Fatalf("the proxy answered %q with %q, want 403 Forbidden", req, status)
		}
	}
	natsURL := "tls://" + net.JoinHostPort(schedIP, "4222")

	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	keyID := map[string]lantern.Digest{}
	for _, w := range []string{"w1", "w2"} {
		out := runLantern(t, dir, pw, "keygen", "--output-key-prefix", w).must(t, "keygen "+w).stdout
		d, err := lantern.ParseDigest(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("keygen %s printed %q: %v", w, out, err)
		}
		keyID[w] = d
	}

	// The scheduler, listening on its LAN address only: TLS is automatic.
	data := filepath.Join(dir, "data")
	sched := lan.start(t, "sched", dir, nil, "scheduler", "--data", data, "--listen", apiAddr,
		"--nats-listen", net.JoinHostPort(schedIP, "4222"), "--claim-key", "maint.pub", "--threshold", "1")
	api := &farmAPI{t: t, base: "http://" + apiAddr, logs: sched.log}
	api.waitHealthy(2 * time.Minute)
	if !strings.Contains(sched.log.String(), `url=`+natsURL) || !strings.Contains(sched.log.String(), "tls=true") {
		t.Errorf("the scheduler does not say it serves NATS with TLS at %s:\n%s", natsURL, sched.log)
	}
	caFile := filepath.Join(data, "nats", "tls", "ca.pem")
	if _, err := os.Stat(caFile); err != nil {
		t.Fatalf("the scheduler, listening beyond loopback, made no CA: %v", err)
	}

	// The builders, enrolled after the scheduler started: their
	// credentials carry its CA.
	for _, w := range []string{"w1", "w2"} {
		runLantern(t, dir, nil, "builder", "add", w, w+".pub", "--data", data).must(t, "builder add "+w)
		if creds := readFile(t, filepath.Join(dir, w+".creds")); !strings.Contains(creds, "BEGIN CERTIFICATE") {
			t.Fatalf("%s.creds holds no CA certificate:\n%s", w, creds)
		}
	}

	// From the test's machine: no one gets onto the bus without
	// credentials, and no one who does not trust the farm's CA talks to it.
	if nc, err := nats.Connect(natsURL, nats.RootCAs(caFile), nats.NoReconnect(), nats.Timeout(30*time.Second)); err == nil {
		nc.Close()
		t.Fatalf("an anonymous client connected to %s", natsURL)
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("anonymous connect to %s (with the CA) = %v, want the server's Authorization Violation", natsURL, err)
	} else {
		t.Logf("anonymous client, with the CA: %v", err)
	}
	if nc, err := nats.Connect(natsURL, nats.UserCredentials(filepath.Join(dir, "w2.creds")), nats.NoReconnect(), nats.Timeout(30*time.Second)); err == nil {
		nc.Close()
		t.Fatalf("a client that does not know the farm's CA connected to %s", natsURL)
	} else if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("connect to %s without the CA = %v, want a failed TLS verification", natsURL, err)
	} else {
		t.Logf("w2's credentials without the CA: %v", err)
	}

	// The two workers, on their own machines.
	modcache := filepath.Join(os.TempDir(), "lantern-netns-modcache")
	if err := os.MkdirAll(modcache, 0o755); err != nil {
		t.Fatal(err)
	}
	workerEnv := append(proxy.env(schedIP), "LANTERN_BUILDKITD="+buildkitd)
	workerArgs := func(w string) []string {
		return []string{"worker", "--nats", natsURL, "--creds", filepath.Join(dir, w+".creds"), "--key", filepath.Join(dir, w+".key"), "--claim-key", filepath.Join(dir, "maint.pub"),
			"--work", filepath.Join(dir, "work-"+w), "--grace", "20s"}
	}
	workers := map[string]*lanternProc{}
	for _, w := range []string{"w1", "w2"} {
		work := filepath.Join(dir, "work-"+w)
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		// One module cache for both, kept from run to run: the go command
		// locks it, and each worker checks all it takes from it.
		if err := os.Symlink(modcache, filepath.Join(work, "modcache")); err != nil {
			t.Fatal(err)
		}
		workers[w] = lan.start(t, w, dir, workerEnv, workerArgs(w)...)
	}
	for _, w := range []string{"w1", "w2"} {
		waitLog(t, workers[w], "worker taking jobs", 3*time.Minute)
	}
	t.Logf("both workers take jobs (%s)", time.Since(start).Round(time.Second))

	// 1. stringer, claimed as its maintainer would: rebuilt by both.
	stringer := "golang.org/x/tools/cmd/stringer@v0.30.0"
	job1 := claimGoCommand(t, api, dir, stringer)
	src := waitVerdict(t, api, stringer, 2, 20*time.Minute, sched, workers["w1"], workers["w2"])
	vd := src.Verdicts[0]
	t.Logf("verdict: %s %s: %s, threshold %d, groups %+v (%s)", stringer, vd.Label, vd.Status, vd.Threshold, vd.Groups, time.Since(start).Round(time.Second))
	if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 {
		t.Fatalf("%s: verdict %+v, want reproduced by both builders\nattestations: %+v", stringer, vd, src.Attestations)
	}
	if len(src.Attestations) != 2 {
		t.Fatalf("%s: %d attestations, want 2: %+v", stringer, len(src.Attestations), src.Attestations)
	}
	var by []lantern.Digest
	for _, a := range src.Attestations {
		t.Logf("attestation: %s by %s, job %s: %s = %s", a.Kind, a.Builder.Short(), a.JobID, a.Label, a.Output)
		if a.Kind != lantern.KindRebuild || a.JobID != job1 || a.Output != vd.Groups[0].Output || a.Label != vd.Label {
			t.Errorf("attestation %+v, want a rebuild of job %s with %s = %s", a, job1, vd.Label, vd.Groups[0].Output)
		}
		by = append(by, a.Builder)
	}
	if !slices.Contains(by, keyID["w1"]) || !slices.Contains(by, keyID["w2"]) {
		t.Errorf("%s: attestations by %v, want by w1 %s and w2 %s", stringer, by, keyID["w1"], keyID["w2"])
	}
	if n := len(proxy.allowed()); n == 0 {
		t.Errorf("the workers reached nothing through the proxy, yet rebuilt a Go command")
	}
	t.Logf("through the proxy: %v; refused: %v; could not dial: %v", proxy.allowed(), proxy.refused(), proxy.failures())

	// 2. w1 is removed.
	jobsOf := builderConsumers(t, natsURL, caFile, filepath.Join(data, "nats-auth", natsauth.SchedulerCreds))
	if !jobsOf(keyID["w1"]) || !jobsOf(keyID["w2"]) {
		t.Fatalf("before the removal: consumer %s of w1 exists: %v, %s of w2: %v; want both",
			natsq.ConsumerName(keyID["w1"]), jobsOf(keyID["w1"]), natsq.ConsumerName(keyID["w2"]), jobsOf(keyID["w2"]))
	}
	removed := time.Now()
	r := runLantern(t, dir, nil, "builder", "remove", "w1", "--data", data).must(t, "builder remove w1")
	t.Logf("%s", strings.TrimSpace(r.stdout))

	// Its worker's connection is closed, for good: it exits, saying so.
	w1 := workers["w1"]
	select {
	case <-w1.exited:
	case <-time.After(3 * time.Minute):
		t.Fatalf("w1's worker still runs 3 minutes after builder remove w1\nw1:\n%s\nscheduler:\n%s", w1.log, sched.log)
	}
	t.Logf("w1's worker exited %s after the removal: %v; its lines since:\n%s", time.Since(removed).Round(time.Second), w1.waitErr, linesAfter(w1.log.String(), "msg=rebuilt"))
	var exit *exec.ExitError
	if !errors.As(w1.waitErr, &exit) || exit.ExitCode() != 1 {
		t.Errorf("w1's worker exited with %v, want exit status 1", w1.waitErr)
	}
	for _, want := range []string{"the farm's NATS connection is closed", "revoked", "nats: connection closed"} {
		if !strings.Contains(w1.log.String(), want) {
			t.Errorf("w1's worker's output lacks %q:\n%s", want, w1.log)
		}
	}
	if !strings.Contains(sched.log.String(), "revocations pushed to NATS") {
		t.Errorf("the scheduler did not log that it pushed the revocation:\n%s", sched.log)
	}

	// It cannot come back: the server refuses its credentials, to a client
	// of the test and to its own worker started again.
	if nc, err := nats.Connect(natsURL, nats.UserCredentials(filepath.Join(dir, "w1.creds")), nats.RootCAs(caFile), nats.NoReconnect(), nats.Timeout(30*time.Second)); err == nil {
		nc.Close()
		t.Errorf("w1's credentials still connect to %s after its removal", natsURL)
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("connect with w1's credentials after its removal = %v, want an authorization violation", err)
	} else {
		t.Logf("w1's credentials after the removal: %v", err)
	}
	again := lan.start(t, "w1", dir, workerEnv, workerArgs("w1")...)
	select {
	case <-again.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("w1's worker, started again after the removal, still runs after 2 minutes:\n%s", again.log)
	}
	if !errors.As(again.waitErr, &exit) || exit.ExitCode() != 1 || !strings.Contains(strings.ToLower(again.log.String()), "authorization violation") ||
		strings.Contains(again.log.String(), "started buildkitd") {
		t.Errorf("w1's worker started again: %v, want exit status 1 with an authorization violation, before any buildkitd:\n%s", again.waitErr, again.log)
	} else {
		t.Logf("w1's worker started again: %v: %s", again.waitErr, strings.TrimSpace(lastLines(again.log.String(), 1)))
	}
	// Its job consumer is gone; w2's stays.
	for deadline := time.Now().Add(time.Minute); jobsOf(keyID["w1"]); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s of w1 is still there a minute after its removal\nscheduler:\n%s", natsq.ConsumerName(keyID["w1"]), sched.log)
		}
	}
	if !jobsOf(keyID["w2"]) {
		t.Fatalf("consumer %s of w2 went with w1's", natsq.ConsumerName(keyID["w2"]))
	}
	t.Logf("consumer %s of w1 is gone from %s; %s of w2 is there", natsq.ConsumerName(keyID["w1"]), natsq.StreamJobs, natsq.ConsumerName(keyID["w2"]))

	// 3. A new claim: answered by w2 alone.
	other := "golang.org/x/tools/cmd/stringer@v0.29.0"
	job2 := claimGoCommand(t, api, dir, other)
	var j struct {
		Builders map[lantern.Digest]struct{ State string }
	}
	// The job is stored a moment after its claim was accepted.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		code, b := api.do("GET", "/api/v1/jobs/"+job2, "")
		if code == http.StatusOK {
			if err := json.Unmarshal(b, &j); err != nil {
				t.Fatalf("GET job %s: %v\n%s", job2, err, b)
			}
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET job %s = %d %s\nscheduler:\n%s", job2, code, b, sched.log)
		}
	}
	if _, ok := j.Builders[keyID["w2"]]; !ok || len(j.Builders) != 1 {
		t.Errorf("job %s of %s is for the builders %v, want w2 %s alone", job2, other, j.Builders, keyID["w2"])
	}
	src = waitVerdict(t, api, other, 1, 10*time.Minute, sched, workers["w2"])
	vd = src.Verdicts[0]
	t.Logf("verdict: %s %s: %s, threshold %d, groups %+v (%s)", other, vd.Label, vd.Status, vd.Threshold, vd.Groups, time.Since(start).Round(time.Second))
	if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 1 || vd.Groups[0].Builders[0] != keyID["w2"] {
		t.Errorf("%s: verdict %+v, want reproduced by w2 %s alone", other, vd, keyID["w2"])
	}
	if len(src.Attestations) != 1 || src.Attestations[0].Builder != keyID["w2"] || src.Attestations[0].JobID != job2 {
		t.Errorf("%s: attestations %+v, want one, by w2 %s, of job %s", other, src.Attestations, keyID["w2"], job2)
	}
	api.get("/api/v1/jobs/"+job2, &j)
	t.Logf("job %s: %v", job2, j.Builders)

	// 4. w1 is shown revoked, with its past attestation.
	var bs struct {
		Builders []struct {
			ID      lantern.Digest
			Name    string
			Revoked time.Time
		}
	}
	api.get("/api/v1/builders", &bs)
	for _, b := range bs.Builders {
		t.Logf("GET /api/v1/builders: %s %s revoked %q", b.Name, b.ID.Short(), b.Revoked.Format(time.RFC3339Nano))
		switch b.Name {
		case "w1":
			if b.ID != keyID["w1"] || b.Revoked.IsZero() || b.Revoked.Before(removed.Add(-time.Minute)) {
				t.Errorf("GET /api/v1/builders: w1 is %+v, want key %s revoked at its removal (%s)", b, keyID["w1"], removed.UTC())
			}
		case "w2":
			if b.ID != keyID["w2"] || !b.Revoked.IsZero() {
				t.Errorf("GET /api/v1/builders: w2 is %+v, want key %s, not revoked", b, keyID["w2"])
			}
		}
	}
	if len(bs.Builders) != 2 {
		t.Errorf("GET /api/v1/builders: %+v, want w1 and w2", bs.Builders)
	}
	page := dashboardPage(t, api, "/builders/"+keyID["w1"].String())
	if !strings.Contains(page, `class="revoked">Revoked`) {
		t.Errorf("the dashboard's page of w1 does not say Revoked:\n%s", page)
	} else {
		t.Logf("dashboard /builders/%s: %s", keyID["w1"].Short(), strings.TrimSpace(grepLines(page, `class="revoked"`)))
	}
	page = dashboardPage(t, api, "/sources/"+stringer)
	if !strings.Contains(page, `<span class="name">w1 (revoked)</span>`) || !strings.Contains(page, `<span class="name">w2</span>`) {
		t.Errorf("the dashboard's page of %s does not show w1 (revoked) and w2:\n%s", stringer, page)
	} else {
		t.Logf("dashboard /sources/%s shows w1's attestation with %s", stringer, `<span class="name">w1 (revoked)</span>`)
	}

	// The rest stop cleanly.
	if err := workers["w2"].stop(t, 2*time.Minute); err != nil {
		t.Errorf("w2's worker after SIGTERM: %v", err)
	}
	if err := sched.stop(t, 2*time.Minute); err != nil {
		t.Errorf("the scheduler after SIGTERM: %v", err)
	}
	t.Logf("done in %s", time.Since(start).Round(time.Second))
}

// claimGoCommand signs a go claim of the Go command nameVersion (a package
// of golang.org/x/tools) with maint.key, posts it, and returns its job.
func claimGoCommand(t *testing.T, api *farmAPI, dir, nameVersion string) string {
	t.Helper()
	_, version, _ := strings.Cut(nameVersion, "@")
	out, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/tools@"+version).Output()
	if err != nil {
		t.Fatalf("go mod download golang.org/x/tools@%s: %v", version, err)
	}
	var dl struct{ Zip, Sum string }
	if err := json.Unmarshal(out, &dl); err != nil {
		t.Fatal(err)
	}
	claim := "claim-" + version + ".json"
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", nameVersion,
		"--source-file", dl.Zip, "--go-sum", dl.Sum, "--fetch", "https://proxy.golang.org/golang.org/x/tools/@v/"+version+".zip",
		"--recipe", "go", "-o", claim).must(t, "claim sign "+nameVersion)
	job := api.postClaim(readFile(t, filepath.Join(dir, claim)))
	t.Logf("claimed %s: job %s", nameVersion, job)
	return job
}

// waitVerdict waits until src has n attestations and a verdict that is not
// pending.
func waitVerdict(t *testing.T, api *farmAPI, src string, n int, within time.Duration, procs ...*lanternProc) sourceView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		// A claim is stored a moment after it was accepted: 404 until then.
		var v sourceView
		if code, b := api.do("GET", "/api/v1/sources/"+src, ""); code == http.StatusOK {
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("GET source %s: %v\n%s", src, err, b)
			}
		} else if code != http.StatusNotFound {
			t.Fatalf("GET source %s = %d %s", src, code, b)
		}
		if len(v.Attestations) >= n && len(v.Verdicts) > 0 && v.Verdicts[0].Status != lantern.StatusPending {
			return v
		}
		for _, p := range procs {
			if p.exitedNow() {
				t.Fatalf("%s: no verdict, and lantern %s exited: %v\n%s", src, p.cmd.Args[3], p.waitErr, p.log)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no verdict within %s: %+v", src, within, v)
		}
		time.Sleep(2 * time.Second)
	}
}

func waitLog(t *testing.T, p *lanternProc, want string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(p.log.String(), want); time.Sleep(200 * time.Millisecond) {
		if p.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("%q: not in the output of %q (exited: %v)\n%s", want, p.cmd.Args, p.waitErr, p.log)
		}
	}
}

func dashboardPage(t *testing.T, api *farmAPI, path string) string {
	t.Helper()
	code, b := api.do("GET", path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d\n%s", path, code, b)
	}
	return string(b)
}

// linesAfter returns the lines of s after the last one that holds marker.
func linesAfter(s, marker string) string {
	if i := strings.LastIndex(s, marker); i >= 0 {
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			return s[i+j+1:]
		}
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "") + "\n"
}

// builderConsumers connects to the farm's NATS as the scheduler does and
// returns a function reporting whether a builder's job consumer exists.
func builderConsumers(t *testing.T, url, ca, creds string) func(lantern.Digest) bool {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserCredentials(creds), nats.RootCAs(ca), nats.Timeout(30*time.Second),
		nats.CustomInboxPrefix(natsq.InboxPrefix(natsq.RoleScheduler, lantern.Digest{})))
	if err != nil {
		t.Fatalf("connect as the scheduler: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return func(b lantern.Digest) bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := js.Consumer(ctx, natsq.StreamJobs, natsq.ConsumerName(b))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false
		}
		if err != nil {
			t.Fatalf("consumer %s: %v", natsq.ConsumerName(b), err)
		}
		return true
	}
}

// testLAN is a network of namespaces: a bridge in a namespace of its own,
// the machines' namespaces, each with a veth pair to the bridge, and a veth
// pair from the test's namespace to it.
type testLAN struct {
	subnet, hostIP string
	ns, ip         map[string]string // machine → namespace, address
	ipCmd, nsenter string
}

// newLAN makes the LAN of the machines sched, w1 and w2, and removes it
// when the test ends (after the processes in it were stopped). Where it
// may not (not root, no ip), it skips the test, but fails it under CI.
func newLAN(t *testing.T) *testLAN {
	t.Helper()
	cannot := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format+"\nCI must run this test, as root with iproute2", args...)
		}
		t.Skipf(format, args...)
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		if ipCmd, err = exec.LookPath("/usr/sbin/ip"); err != nil {
			cannot("no ip (iproute2): %v", err)
		}
	}
	// Processes enter their namespace with nsenter, not `ip netns exec`:
	// that one also unshares the mount namespace and mounts a new /sys,
	// which hides the cgroup mounts below it, and runc then cannot run a
	// build ("no cgroup mount found in mountinfo").
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		cannot("no nsenter (util-linux): %v", err)
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	pid := os.Getpid()
	l := &testLAN{ns: map[string]string{}, ip: map[string]string{}, ipCmd: ipCmd, nsenter: nsenter}
	lanNS := fmt.Sprintf("lantern-%d-lan", pid)
	if err := ip("netns", "add", lanNS); err != nil {
		cannot("cannot make a network namespace: %v", err)
	}
	hostIf := fmt.Sprintf("lt%d", pid)
	t.Cleanup(func() {
		ip("link", "del", hostIf)
		for _, ns := range l.ns {
			if err := ip("netns", "del", ns); err != nil {
				t.Error(err)
			}
		}
		if err := ip("netns", "del", lanNS); err != nil {
			t.Error(err)
		}
	})
	// A /24 of 10.231.0.0/16 that this machine routes nowhere yet.
	routes, err := exec.Command(ipCmd, "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatal(err)
	}
	for x := pid % 200; ; x = (x + 1) % 256 {
		if p := fmt.Sprintf("10.231.%d.", x); !strings.Contains(string(routes), p) {
			l.subnet, l.hostIP = p+"0/24", p+"1"
			for i, m := range []string{"sched", "w1", "w2"} {
				l.ip[m] = fmt.Sprintf("%s%d", p, 10+i)
			}
			break
		}
	}
	must := func(args ...string) {
		t.Helper()
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("-n", lanNS, "link", "add", "br0", "type", "bridge")
	must("-n", lanNS, "link", "set", "br0", "up")
	for _, m := range []string{"sched", "w1", "w2"} {
		ns := fmt.Sprintf("lantern-%d-%s", pid, m)
		must("netns", "add", ns)
		l.ns[m] = ns
		must("-n", lanNS, "link", "add", "to-"+m, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", lanNS, "link", "set", "to-"+m, "master", "br0", "up")
		must("-n", ns, "addr", "add", l.ip[m]+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	must("link", "add", hostIf, "type", "veth", "peer", "name", "to-test", "netns", lanNS)
	must("-n", lanNS, "link", "set", "to-test", "master", "br0", "up")
	must("addr", "add", l.hostIP+"/24", "dev", hostIf)
	must("link", "set", hostIf, "up")
	return l
}

// start runs lantern with args on machine m, in dir, with the key password
// and env in its environment (and no proxy but what env names), and stops
// it when the test ends, showing its output if the test failed.
func (l *testLAN) start(t *testing.T, m, dir string, env []string, args ...string) *lanternProc {
	t.Helper()
	cmd := exec.Command(l.nsenter, append([]string{"--net=/run/netns/" + l.ns[m], lanternBin}, args...)...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LANTERN_") || strings.HasPrefix(k, "COSIGN_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(append(cmd.Env, pw...), env...)
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
			if err := p.stop(t, 2*time.Minute); err != nil {
				t.Logf("lantern %s on %s: %v", args[0], m, err)
			}
		}
		if i := slices.Index(args, "--work"); i >= 0 {
			cleanUpWork(t, args[i+1])
		}
		if t.Failed() {
			t.Logf("the output of lantern %s on %s (pid %d, %v):\n%s", args[0], m, cmd.Process.Pid, p.waitErr, p.log)
		}
	})
	return p
}

// cleanUpWork waits for the buildkitd of a worker that was stopped (or
// killed, when it did not stop in time) with --work dir to exit, and
// unmounts what it left under dir, so that the test's directory can go.
func cleanUpWork(t *testing.T, dir string) {
	t.Helper()
	daemons := func() []int {
		return procsWith(func(args []string) bool {
			return filepath.Base(args[0]) == "buildkitd" && slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, dir+"/") })
		})
	}
	for deadline := time.Now().Add(time.Minute); len(daemons()) > 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, pid := range daemons() {
				t.Logf("buildkitd %d of %s still runs a minute after its worker stopped; killing it", pid, dir)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			break
		}
	}
	for _, m := range slices.Backward(mountsUnder(dir)) {
		t.Logf("left under %s: mount %s; unmounting it", dir, m)
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
}

// connectProxy is an HTTP proxy that tunnels CONNECT requests to port 443
// and refuses everything else: the machines' only way out.
type connectProxy struct {
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	ok     map[string]int // host:port tunnelled → times
	no     map[string]int // refused → times
	failed map[string]int // allowed, but the dial failed → times
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startConnectProxy(t *testing.T, host string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, addr: ln.Addr().String(), ok: map[string]int{}, no: map[string]int{}, failed: map[string]int{}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c, true) {
				c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.track(c, false)
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// track adds c to the open connections, or removes it and closes it; it
// reports false once the proxy is closed.
func (p *connectProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	if add {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
		c.Close()
	}
	return true
}

func (p *connectProxy) serve(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	target := req.Host
	if req.Method != http.MethodConnect {
		target = req.Method + " " + req.URL.String()
	}
	_, port, _ := net.SplitHostPort(req.Host)
	if req.Method != http.MethodConnect || port != "443" {
		p.count(p.no, target)
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, 30*time.Second)
	if err != nil {
		p.count(p.failed, target+" ("+err.Error()+")")
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	if !p.track(up, true) {
		up.Close()
		return
	}
	defer p.track(up, false)
	p.count(p.ok, target)
	fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

func (p *connectProxy) count(m map[string]int, k string) {
	p.mu.Lock()
	m[k]++
	p.mu.Unlock()
}

func (p *connectProxy) snapshot(m map[string]int) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (p *connectProxy) allowed() map[string]int  { return p.snapshot(p.ok) }
func (p *connectProxy) refused() map[string]int  { return p.snapshot(p.no) }
func (p *connectProxy) failures() map[string]int { return p.snapshot(p.failed) }

// try sends the proxy the request line and headers req, and returns the
// status line of its answer.
func (p *connectProxy) try(t *testing.T, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("the proxy's answer to %q: %v", req, err)
	}
	return strings.TrimSpace(status)
}

// env is the environment of a process that goes out through the proxy,
// and straight to the farm's scheduler at sched.
func (p *connectProxy) env(sched string) []string {
	u := "http://" + p.addr
	return []string{"HTTPS_PROXY=" + u, "HTTP_PROXY=" + u, "NO_PROXY=" + sched + ",127.0.0.1,localhost"}
}
