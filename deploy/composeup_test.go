package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/internal/dockertest"
)

// TestComposeUp brings deploy/compose up on a dockerd of its own: the
// image built from this checkout (docker load), init.sh, then the three
// NATS nodes and the scheduler; the scheduler's API answers with both
// builders enrolled. The scheduler runs with --nats-replicas=3, so its
// streams exist only if the three nodes formed a cluster.
// The workers build through that dockerd's BuildKit (lantern worker
// --docker, its socket mounted): both builders online.
func TestComposeUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd and a farm")
	}
	tool(t, "docker-compose")
	tool(t, "docker")
	d := dockertest.Start(t)
	host := d.Host
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A copy of compose/, as an operator has it.
	for _, f := range []string{"docker-compose.yml", "init.sh"} {
		data, err := os.ReadFile(filepath.Join("compose", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "DOCKER_HOST="+host, "LANTERN_IMAGE=lantern:deploytest", "LANTERN_API_PORT=127.0.0.1:", "COMPOSE_PROJECT_NAME=lanterndeploytest",
		"LANTERN_DOCKER_SOCKET="+strings.TrimPrefix(host, "unix://"))
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.CommandContext(ctx, name, args...)
		c.Dir, c.Env = dir, env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	image := filepath.Join(dir, "image.tar")
	c := exec.CommandContext(ctx, "go", "run", "./image", "-o", image, "-tag", "lantern:deploytest")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build the image: %v\n%s", err, out)
	}
	run("docker", "load", "-i", image)
	run("sh", "init.sh")
	services := []string{"net", "nats-1", "nats-2", "nats-3", "scheduler", "worker-1", "worker-2"}
	t.Cleanup(func() {
		c := exec.Command("docker-compose", "down", "-v", "--timeout", "20")
		c.Dir, c.Env = dir, env
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	run("docker-compose", append([]string{"up", "-d"}, services...)...)
	port := strings.TrimSpace(run("docker-compose", "port", "net", "8080"))
	url := "http://" + port + "/api/v1/status"

	var status struct {
		Builders []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		} `json:"builders"`
	}
	await := func() {
		t.Helper()
		for i := 0; ; i++ {
			status.Builders = nil
			err := getJSON(ctx, url, &status)
			if err == nil && len(status.Builders) == 2 && status.Builders[0].Online && status.Builders[1].Online {
				return
			}
			if i == 180 {
				t.Fatalf("GET %s: %v, %+v; logs:\n%s", url, err, status, run("docker-compose", "logs", "--tail", "30"))
			}
			time.Sleep(time.Second)
		}
	}
	await()
	// A node killed and the scheduler restarted: the namespace is net's,
	// so both come back on the same loopback, and the API answers again
	// on the same port.
	run("docker-compose", "kill", "nats-3")
	run("docker-compose", "restart", "scheduler")
	await()
	run("docker-compose", "up", "-d", "nats-3")
	await()
	var names []string
	for _, b := range status.Builders {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"builder-1", "builder-2"}) {
		t.Errorf("builders %q, want builder-1 and builder-2", names)
	}
	ps := run("docker-compose", "ps")
	for _, s := range services {
		if !strings.Contains(ps, "lanterndeploytest_"+s+"_1") {
			t.Errorf("docker-compose ps has no %s:\n%s", s, ps)
		}
	}
	if strings.Contains(ps, "Restarting") || strings.Contains(ps, "Exit") {
		t.Errorf("a service is not running:\n%s", ps)
	}
	// The nodes are one cluster: each logged the others' routes and the
	// replicated streams' leaders.
	logs := run("docker-compose", "logs", "nats-1", "nats-2", "nats-3")
	for _, want := range []string{"LANTERN_JOBS", "LANTERN_CLAIMS"} {
		if !strings.Contains(logs, "JetStream cluster new stream leader for") || !strings.Contains(logs, want) {
			t.Errorf("the nodes' logs show no clustered stream %s:\n%s", want, logs)
		}
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.Stop()
	os.Exit(code)
}
