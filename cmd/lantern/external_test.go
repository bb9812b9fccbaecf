package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern/internal/buildkittest"
)

// natsServerBin is the nats-server binary that make builds from the
// module's own nats-server (bin/nats-server), or $LANTERN_NATS_SERVER.
func natsServerBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("LANTERN_NATS_SERVER"); b != "" {
		return b
	}
	b, err := filepath.Abs(filepath.Join("..", "..", "bin", "nats-server"))
	if err == nil {
		if _, err = os.Stat(b); err == nil {
			return b
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no nats-server (%v): CI must run this test; 'make nats-server' builds it", err)
	}
	t.Skipf("no nats-server (%v); 'make nats-server' builds it", err)
	return ""
}

// TestExternalNATS runs the farm on an operator's own nats-server process,
// configured with what `lantern scheduler --print-nats-config` prints, as
// the README shows: anonymous clients are refused; the scheduler and a
// worker with a builder's credentials connect; `lantern builder remove`
// closes the worker's connection through the server's own revocation.
func TestExternalNATS(t *testing.T) {
	server := natsServerBin(t)
	buildkittest.Require(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "alice").must(t, "keygen alice")

	conf := runLantern(t, dir, nil, "scheduler", "--data", data, "--print-nats-config", "--nats-listen", "127.0.0.1:4222").must(t, "print-nats-config").stdout
	if !strings.Contains(conf, "operator:") || !strings.Contains(conf, "resolver_preload") {
		t.Fatalf("--print-nats-config printed:\n%s", conf)
	}
	putFile(t, dir, "nats.conf", conf)
	port := freePort(t)
	ns := exec.Command(server, "-c", "nats.conf", "-p", fmt.Sprint(port), "-a", "127.0.0.1")
	ns.Dir = dir
	var nsLog strings.Builder
	ns.Stdout, ns.Stderr = &nsLog, &nsLog
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Process.Kill(); ns.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("an anonymous client connected to the operator's nats-server")
		}
		if strings.Contains(err.Error(), "Authorization Violation") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not up: %v\n%s", err, nsLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	runLantern(t, dir, nil, "builder", "add", "alice", "alice.pub", "--data", data).must(t, "builder add")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sched := startLanternProc(t, dir, "scheduler", "--data", data, "--nats", url, "--listen", addr, "--claim-key", "maint.pub", "--threshold", "1")
	defer sched.stop(t, 60*time.Second)
	api := &farmAPI{t: t, base: "http://" + addr, logs: sched.log}
	api.waitHealthy(60 * time.Second)

	w := startLanternProc(t, dir, "worker", "--nats", url, "--creds", "alice.creds", "--key", "alice.key", "--claim-key", "maint.pub", "--work", filepath.Join(dir, "work"))
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(w.log.String(), "worker taking jobs"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) || w.exitedNow() {
			t.Fatalf("the worker did not start taking jobs:\n%s\nscheduler:\n%s", w.log, sched.log)
		}
	}
	runLantern(t, dir, nil, "builder", "remove", "alice", "--data", data).must(t, "builder remove")
	select {
	case <-w.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the removed builder's worker still runs:\n%s\nscheduler:\n%s", w.log, sched.log)
	}
	if w.waitErr == nil || !strings.Contains(w.log.String(), "revoked") {
		t.Errorf("the removed builder's worker exited with %v; want an error that says its credentials are revoked:\n%s", w.waitErr, w.log)
	}
	if nc, err := nats.Connect(url, nats.NoReconnect(), nats.UserCredentials(filepath.Join(dir, "alice.creds"))); err == nil {
		nc.Close()
		t.Error("the removed builder's credentials still connect")
	}
}
