package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestVerdictAwaitsEveryLabel: a source whose one label is reproduced while
// another of its job has no verdict yet (the farm says it awaits it) is not
// reproduced: lantern verdict exits 1, and --wait waits for the label.
func TestVerdictAwaitsEveryLabel(t *testing.T) {
	const linux = `{"job":"j1","label":"hello-linux-amd64","status":"reproduced","threshold":1,
		"source":{"name":"example.org/hello","version":"v1.0.0","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		"groups":[{"output":"sha256:1111111111111111111111111111111111111111111111111111111111111111","builders":["sha256:2222222222222222222222222222222222222222222222222222222222222222"]}]}`
	windows := strings.NewReplacer("hello-linux-amd64", "hello-windows-amd64.exe").Replace(linux)
	var polls atomic.Int64
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if polls.Add(1) < 3 {
			w.Write([]byte(`{"verdicts":[` + linux + `],"awaiting":[{"job":"j1","label":"hello-windows-amd64.exe"}]}`))
			return
		}
		w.Write([]byte(`{"verdicts":[` + linux + `,` + windows + `]}`))
	}))
	t.Cleanup(farm.Close)
	dir := t.TempDir()
	r := runLantern(t, dir, nil, "verdict", "--api", farm.URL, "example.org/hello@v1.0.0")
	r.fails(t, "one label of two", 1, "hello-windows-amd64.exe no verdict yet")
	if !strings.Contains(r.stdout, "hello-windows-amd64.exe: no verdict yet") {
		t.Errorf("stdout does not name the label awaited:\n%s", r.stdout)
	}
	r = runLantern(t, dir, nil, "verdict", "--api", farm.URL, "--wait", "1m", "example.org/hello@v1.0.0").must(t, "waiting for both labels")
	if n := polls.Load(); n < 3 {
		t.Errorf("verdict --wait returned after %d polls, before the farm had both labels", n)
	}
}

// TestVerdictAwaitsUnreadJob: a job the farm awaits without a label (one
// past the jobs it reads for a source) keeps the source from reading as
// reproduced, and is named.
func TestVerdictAwaitsUnreadJob(t *testing.T) {
	const linux = `{"job":"j1","label":"hello-linux-amd64","status":"reproduced","threshold":1,
		"source":{"name":"example.org/hello","version":"v1.0.0","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		"groups":[{"output":"sha256:1111111111111111111111111111111111111111111111111111111111111111","builders":["sha256:2222222222222222222222222222222222222222222222222222222222222222"]}]}`
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"verdicts":[` + linux + `],"awaiting":[{"job":"j2","label":""}]}`))
	}))
	t.Cleanup(farm.Close)
	r := runLantern(t, t.TempDir(), nil, "verdict", "--api", farm.URL, "example.org/hello@v1.0.0")
	r.fails(t, "a job awaited without a label", 1, "job j2 (labels not read) no verdict yet")
}
