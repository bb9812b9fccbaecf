package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/dockertest"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/worker/dockerengine"
)

// TestWorkerDockerFlags: --docker builds in Docker Engine's BuildKit, so
// the flags of a buildkitd are refused with it, and --docker-host without
// it; each is a wrong command line, exit 2, before anything is started.
func TestWorkerDockerFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"worker", "--nats", "nats://127.0.0.1:1", "--creds", "w.creds", "--key", "w.key", "--claim-key", "w.pub"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"with --buildkit", []string{"--docker", "--buildkit", "unix:///run/buildkit/buildkitd.sock"}, nil, "--docker and --buildkit"},
		{"with $LANTERN_BUILDKIT", []string{"--docker"}, []string{"LANTERN_BUILDKIT=unix:///run/buildkit/buildkitd.sock"}, "--docker and --buildkit (or $LANTERN_BUILDKIT)"},
		{"$LANTERN_DOCKER with --buildkit", []string{"--buildkit", "unix:///run/buildkit/buildkitd.sock"}, []string{"LANTERN_DOCKER=1"}, "--docker and --buildkit"},
		{"with --registry-http", []string{"--docker", "--registry-http", "127.0.0.1:5000"}, nil, "insecure-registries"},
		{"--docker-host alone", []string{"--docker-host", "unix:///var/run/docker.sock"}, nil, "add --docker"},
		{"--docker-tls alone", []string{"--docker-tls", "/etc/docker/certs"}, nil, "add --docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runLantern(t, dir, tc.env, append(base, tc.args...)...).fails(t, "worker "+strings.Join(tc.args, " "), 2, tc.want)
		})
	}
}

// TestWorkerOnDockerEngine runs 'lantern worker --docker' against a real
// Docker Engine (Debian's dockerd, which the test starts) with a scheduler
// process: the worker takes a generic build's job, builds it in the
// Engine's BuildKit — the builder image pulled by the Engine from a
// registry on 127.0.0.1 — and the verdict is reproduced. On an Engine that
// cannot hold the caps, the worker with its default caps exits 2 first,
// naming the Engine that can and the flags that turn them off.
func TestWorkerOnDockerEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds on Docker Engine")
	}
	d := dockertest.Start(t)
	e, err := dockerengine.Connect(t.Context(), d.Host, "")
	if err != nil {
		t.Fatal(err)
	}
	capsErr := e.HoldsCaps()
	e.Close()
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)

	dir := t.TempDir()
	builder, want := helloClaim(t, dir, pw, image)
	runLantern(t, dir, pw, "builder", "add", "builder", "builder.pub", "--data", filepath.Join(dir, "data")).must(t, "builder add")

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sched := startLanternProc(t, dir, "scheduler", "--data", filepath.Join(dir, "data"), "--listen", addr,
		"--nats-listen", natsAddr, "--claim-key", "maint.pub", "--threshold", "1",
		"--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32")
	defer sched.stop(t, 60*time.Second)
	api := &farmAPI{t: t, base: "http://" + addr, logs: sched.log}
	api.waitHealthy(60 * time.Second)

	args := []string{"worker", "--docker", "--docker-host", d.Host, "--nats", "nats://" + natsAddr,
		"--creds", filepath.Join(dir, "builder.creds"), "--key", filepath.Join(dir, "builder.key"), "--claim-key", filepath.Join(dir, "maint.pub"),
		"--work", filepath.Join(dir, "work"), "--heartbeat", "1s", "--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32"}
	if capsErr != nil {
		if !errors.Is(capsErr, dockerengine.ErrNoCaps) {
			t.Fatal(capsErr)
		}
		runLantern(t, dir, pw, args...).fails(t, "worker --docker with caps on "+d.Version, 2, "Docker Engine "+dockerengine.MinEngineCaps+" or later")
		runLantern(t, dir, pw, args...).fails(t, "worker --docker with caps on "+d.Version, 2, "--build-memory 0 --build-processes 0 --build-disk 0")
		t.Logf("%s: the worker needs its caps off: %v", d.Version, capsErr)
		args = append(args, "--build-memory", "0", "--build-processes", "0", "--build-disk", "0")
	}
	job := api.postClaim(readFile(t, filepath.Join(dir, "claim.json")))
	w := startLanternProc(t, dir, args...)
	defer w.stop(t, 60*time.Second)
	var src sourceView
	for deadline := time.Now().Add(3 * time.Minute); ; {
		// Not found until the scheduler has taken the claim in.
		if code, b := api.do("GET", "/api/v1/sources/example.org/hello@1.0", ""); code == http.StatusOK {
			src = sourceView{}
			if err := json.Unmarshal(b, &src); err != nil {
				t.Fatal(err)
			}
		}
		if len(src.Verdicts) == 1 && src.Verdicts[0].Status != lantern.StatusPending {
			break
		}
		if w.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("no verdict after 3 minutes (worker exited: %v): %+v\nworker:\n%s\nscheduler:\n%s", w.exitedNow(), src, w.log, sched.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(src.Attestations) != 1 {
		t.Fatalf("%d attestations, want 1: %+v\nworker:\n%s", len(src.Attestations), src.Attestations, w.log)
	}
	a := src.Attestations[0]
	if a.Kind != lantern.KindRebuild || a.Builder.String() != builder || a.JobID != job || a.Output != want || src.Verdicts[0].Status != lantern.StatusReproduced {
		t.Errorf("attestation %+v, verdict %+v; want a rebuild of job %s by %s, shout = %s, reproduced\nworker:\n%s", a, src.Verdicts[0], job, builder, want, w.log)
	}
	if !strings.Contains(w.log.String(), "building in Docker Engine's BuildKit") {
		t.Errorf("the worker's log does not say it builds in Docker Engine:\n%s", w.log)
	}
}
