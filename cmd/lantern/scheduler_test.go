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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSchedulerCommand runs `lantern scheduler` as a user would, with its
// embedded NATS server, posts a claim signed with `lantern claim sign`, and
// finds its job and source through the API; then stops it with SIGTERM.
func TestSchedulerCommand(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "builder").must(t, "keygen builder")
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	cmd := exec.Command(lanternBin, "scheduler", "--data", data, "--listen", addr, "--nats-listen", natsAddr, "--claim-key", "maint.pub", "--threshold", "1",
		"--allow-http-fetch", "--allow-fetch-from", "127.0.0.1/32") // the claim below names a source on 127.0.0.1
	cmd.Dir = dir
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("lantern scheduler after SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("lantern scheduler did not stop on SIGTERM\n%s", logs.String())
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler not up: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Nobody gets onto the bus without the farm's credentials, on
	// loopback too.
	if nc, err := nats.Connect("nats://"+natsAddr, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatalf("an anonymous client connected to the NATS of lantern scheduler")
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("anonymous connect = %v, want the server's Authorization Violation", err)
	}
	// A builder enrolled while the scheduler runs is the farm's within
	// seconds, with no restart.
	runLantern(t, dir, pw, "builder", "add", "alice", "builder.pub", "--data", data).must(t, "builder add")
	if _, err := os.Stat(filepath.Join(dir, "alice.creds")); err != nil {
		t.Fatalf("builder add wrote no alice.creds: %v", err)
	}

	putFile(t, dir, "hello.tar.gz", "hello source")
	putFile(t, dir, "build.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("cd", 32)+`", "commands": ["make"], "outputs": {"hello-linux-amd64": "hello"}}`)
	// A source on loopback, but not on the address allowed, is refused,
	// saying why.
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--fetch", "http://[::1]:1/hello.tar.gz", "--recipe", "generic", "--build", "build.json", "-o", "refused.json").must(t, "claim sign")
	resp, err := http.Post(base+"/api/v1/claims", "application/json", strings.NewReader(readFile(t, filepath.Join(dir, "refused.json"))))
	if err != nil {
		t.Fatal(err)
	}
	var refused struct{ Error, Fix string }
	json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(refused.Error, "::1 is loopback") || !strings.Contains(refused.Fix, "--allow-fetch-from") {
		t.Errorf("POST claim fetching from [::1] = %d %+v, want 422 saying it is loopback", resp.StatusCode, refused)
	}
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--fetch", "http://127.0.0.1:1/hello.tar.gz", "--recipe", "generic", "--build", "build.json", "-o", "claim.json").must(t, "claim sign")
	resp, err = http.Post(base+"/api/v1/claims", "application/json", strings.NewReader(readFile(t, filepath.Join(dir, "claim.json"))))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ Job string }
	json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || accepted.Job == "" {
		t.Fatalf("POST claim = %d %+v\n%s", resp.StatusCode, accepted, logs.String())
	}
	get := func(path string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for {
		if code, _ := get("/api/v1/jobs/" + accepted.Job); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never stored\n%s", accepted.Job, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/api/v1/sources/example.org/hello@v1.0.0"); code != http.StatusOK || !strings.Contains(body, accepted.Job) {
		t.Errorf("GET source = %d %s", code, body)
	}
	for {
		code, body := get("/api/v1/builders")
		if code == http.StatusOK && strings.Contains(body, `"name":"alice"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET builders = %d %s: the builder enrolled while the scheduler ran is not there\n%s", code, body, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, `lantern_claims_total{result="accepted"} 1`) {
		t.Errorf("GET /metrics = %d, lacks one accepted claim:\n%s", code, body)
	}

	// The farm lists the claim keys it accepts, for a builder that opts in
	// to them (lantern worker --farm-claim-keys).
	maint, err := loadPublic(filepath.Join(dir, "maint.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := fetchClaimKeys(t.Context(), base); err != nil || len(ks) != 1 || ks[0].ID() != maint.ID() {
		t.Errorf("fetchClaimKeys = %v, %v; want the maintainer's key", ks, err)
	}

	// A second claim gives example.org/hello@v1.0.0 another source: a
	// conflict, which lantern verdict reports with exit code 3.
	putFile(t, dir, "other.tar.gz", "another hello source")
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "other.tar.gz", "--fetch", "http://127.0.0.1:1/other.tar.gz", "--recipe", "generic", "--build", "build.json", "--post", base).must(t, "claim sign --post another source")
	for {
		r := runLantern(t, dir, nil, "verdict", "--api", base, "example.org/hello@v1.0.0")
		if r.code == 3 {
			if !strings.Contains(r.stdout, "conflict: claims give it 2 different sources") || !strings.Contains(r.stderr, "contradicted") {
				t.Errorf("lantern verdict on a conflict printed:\n%s%s", r.stdout, r.stderr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lantern verdict never reported the conflict: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
