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

// TestSchedulerNameHeldOnce: two `lantern scheduler` processes with the
// same --scheduler-name on one NATS: the second refuses to start (exit 1),
// saying which name, that another scheduler runs with it and where, and
// what to do; the first keeps working. After a kill -9 of the first, its
// restart takes its name over once the name's TTL has passed; after a
// clean stop, the name is free at once.
func TestSchedulerNameHeldOnce(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	url := startFarmNATS(t, dir, data)
	maint := newKey(t)
	putFile(t, dir, "maint.pub", string(maint.Public().MarshalPEM()))
	// The second scheduler's machine: a copy of the farm's data directory,
	// as an operator makes one.
	data2 := filepath.Join(dir, "data2")
	if err := os.CopyFS(data2, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	scheduler := func(data, addr string) (*lanternProc, *farmAPI) {
		p := startLanternProc(t, dir, "scheduler", "--data", data, "--nats", url, "--listen", addr, "--scheduler-name", "twin",
			"--claim-key", "maint.pub", "--threshold", "1", "--diffoscope", "none")
		return p, &farmAPI{t: t, base: "http://" + addr, logs: p.log}
	}
	procA, apiA := scheduler(data, addrA)
	apiA.waitHealthy(2 * time.Minute)

	procB, _ := scheduler(data2, addrB)
	select {
	case <-procB.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the second scheduler named twin still runs:\n%s\nthe first:\n%s", procB.log, procA.log)
	}
	code := -1
	if procB.cmd.ProcessState != nil {
		code = procB.cmd.ProcessState.ExitCode()
	}
	t.Logf("the second scheduler exited %d:\n%s", code, procB.log)
	if code != 1 {
		t.Errorf("the second scheduler named twin exited %d, want 1", code)
	}
	for _, want := range []string{`scheduler name "twin"`, "another scheduler that is running", fmt.Sprintf("pid %d", procA.cmd.Process.Pid), addrA, "--scheduler-name", "stop the other"} {
		if !strings.Contains(procB.log.String(), want) {
			t.Errorf("the second scheduler's refusal does not say %q", want)
		}
	}
	// The first keeps working: it takes a claim posted after the refusal.
	env, job := clusterClaim(t, maint, "example.org/twin-first", "tool")
	apiA.postClaim(string(env))
	waitOK(t, apiA, "/api/v1/jobs/"+job.ID)
	if m := apiA.metrics(); !strings.Contains(m, "lantern_scheduler_name_held 1") || !strings.Contains(m, "lantern_scheduler_name_conflict 0") {
		t.Errorf("the first scheduler's /metrics do not show its name held:\n%s", grepLines(m, "lantern_scheduler_name"))
	}

	// kill -9: the name stays held until its TTL, and then the restart
	// takes it over.
	procA.cmd.Process.Kill()
	<-procA.exited
	procA, apiA = scheduler(data, addrA)
	apiA.waitHealthy(2 * time.Minute)
	if !strings.Contains(procA.log.String(), "took the scheduler name over") {
		t.Errorf("the restart after kill -9 did not say it took the name over:\n%s", procA.log)
	}
	env, job = clusterClaim(t, maint, "example.org/twin-restarted", "tool")
	apiA.postClaim(string(env))
	waitOK(t, apiA, "/api/v1/jobs/"+job.ID)

	// A clean stop releases the name: the next one takes it without
	// waiting for its holder.
	if err := procA.stop(t, time.Minute); err != nil {
		t.Fatalf("stop: %v\n%s", err, procA.log)
	}
	procB, apiB := scheduler(data2, addrB)
	apiB.waitHealthy(2 * time.Minute)
	if strings.Contains(procB.log.String(), "waiting to see whether its holder is alive") {
		t.Errorf("the name, released by a clean stop, was still held:\n%s", procB.log)
	}
	// (What the first took is in the first's store, not in this one's:
	// one name, one consumer. This one takes what comes next.)
	env, job = clusterClaim(t, maint, "example.org/twin-second", "tool")
	apiB.postClaim(string(env))
	waitOK(t, apiB, "/api/v1/jobs/"+job.ID)
	if err := procB.stop(t, time.Minute); err != nil {
		t.Errorf("stop: %v\n%s", err, procB.log)
	}
}

// startFarmNATS runs an operator's own nats-server for the farm of data,
// configured with what `lantern scheduler --print-nats-config` prints, and
// returns its URL once it answers.
func startFarmNATS(t *testing.T, dir, data string) string {
	t.Helper()
	server := natsServerBin(t)
	conf := runLantern(t, dir, nil, "scheduler", "--data", data, "--print-nats-config", "--nats-listen", "127.0.0.1:4222").must(t, "print-nats-config").stdout
	putFile(t, dir, "nats.conf", conf)
	port := freePort(t)
	ns := exec.Command(server, "-c", "nats.conf", "-p", fmt.Sprint(port), "-a", "127.0.0.1")
	ns.Dir = dir
	nsLog := new(buildkittest.SyncBuffer)
	ns.Stdout, ns.Stderr = nsLog, nsLog
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Process.Kill(); ns.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.UserCredentials(filepath.Join(data, "nats-auth", "scheduler.creds")))
		if err == nil {
			nc.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not up: %v\n%s", err, nsLog.String())
		}
	}
}
