package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestReindexCommand: the store is rebuilt from the streams into a new file
// that takes the old one's place only when it is complete — from a damaged
// store (which lantern scheduler refuses to serve, pointing at --reindex),
// after an interrupted reindex (the old store goes on serving), and by
// itself for a store an older lantern wrote.
func TestReindexCommand(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	data := filepath.Join(dir, "data")
	store := filepath.Join(data, "scheduler.db")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	start := func(extra ...string) *lanternProc {
		t.Helper()
		args := append([]string{"scheduler", "--data", data, "--listen", addr, "--nats-listen", natsAddr, "--claim-key", "maint.pub", "--diffoscope", "none"}, extra...)
		return startLanternProc(t, dir, args...)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(p *lanternProc, what, path string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if code, _ := get(path); code == http.StatusOK {
				return
			}
			if p.exitedNow() || time.Now().After(deadline) {
				t.Fatalf("%s: GET %s never answered 200\n%s", what, path, p.log.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	p := start()
	waitFor(p, "first start", "/healthz")
	putFile(t, dir, "hello.tar.gz", "hello source")
	putFile(t, dir, "build.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("cd", 32)+`", "commands": ["make"], "outputs": {"hello": "hello"}}`)
	r := runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--fetch", "https://example.org/hello.tar.gz", "--recipe", "generic", "--build", "build.json", "--post", base).must(t, "claim sign --post")
	job := jobOf(t, r.stdout)
	waitFor(p, "the claim's job", "/api/v1/jobs/"+job)
	if err := p.stop(t, 60*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.log.String())
	}

	// A damaged store: refused, with the way out.
	if err := os.WriteFile(store, []byte(strings.Repeat("not a bbolt file ", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.stop(t, 10*time.Second)
		t.Fatalf("lantern scheduler served a damaged store\n%s", p.log.String())
	}
	if !strings.Contains(p.log.String(), "--reindex") {
		t.Errorf("lantern scheduler on a damaged store does not point at --reindex:\n%s", p.log.String())
	}
	p = start("--reindex")
	waitFor(p, "reindex of a damaged store", "/api/v1/jobs/"+job)
	p.stop(t, 60*time.Second)
	if b, err := os.ReadFile(store + ".before-reindex"); err != nil || !strings.HasPrefix(string(b), "not a bbolt file") {
		t.Errorf("the damaged store was not kept beside the new one: %v", err)
	}

	// An interrupted reindex leaves its file behind: the old store serves.
	if err := os.WriteFile(store+".reindex", []byte("half a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start()
	waitFor(p, "start beside an interrupted reindex", "/api/v1/jobs/"+job)
	p.stop(t, 60*time.Second)

	// A store of an older layout is rebuilt by itself.
	db, err := bolt.Open(store, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("layout"), []byte("2")) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	p = start()
	waitFor(p, "start on an older store", "/api/v1/jobs/"+job)
	if !strings.Contains(p.log.String(), "another version of lantern") {
		t.Errorf("no word of rebuilding an older store:\n%s", p.log.String())
	}
	p.stop(t, 60*time.Second)
}

// jobOf reads the job id from what lantern claim sign --post printed.
func jobOf(t *testing.T, out string) string {
	t.Helper()
	i := strings.LastIndex(out, "job ")
	if i < 0 {
		t.Fatalf("claim sign --post printed no job: %q", out)
	}
	return strings.TrimSpace(out[i+len("job "):])
}
