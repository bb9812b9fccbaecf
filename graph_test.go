package lantern_test

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs go list with args in the module and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestWireGraph guards the shape of the wire in the code: the NATS adapter
// imports only the domain of this module (the scheduler and the worker each
// declare what they use of it), and a worker's binary links neither the
// scheduler, nor a NATS server, nor the Prometheus HTTP handler.
func TestWireGraph(t *testing.T) {
	const module = "github.com/lanternfarm/lantern"
	for _, imp := range goList(t, "-f", `{{join .Imports "\n"}}`, "./natsq") {
		if strings.HasPrefix(imp, module) && imp != module {
			t.Errorf("natsq imports %s; it may import only %s of this module", imp, module)
		}
	}
	for _, dep := range goList(t, "-deps", "./worker/...") {
		for _, banned := range []string{
			module + "/scheduler",
			module + "/natsq/natsserver",
			"github.com/nats-io/nats-server/v2",
			"github.com/prometheus/client_golang/prometheus/promhttp",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("go list -deps ./worker has %s", dep)
			}
		}
	}
}

// TestSolveGraph guards the one place that solves builds: a recipe only
// describes its build (recipes.Build), and worker/solve runs it, on a
// buildkitd or Docker Engine alike; recipes links no BuildKit client.
func TestSolveGraph(t *testing.T) {
	const client = "github.com/moby/buildkit/client"
	for _, dep := range goList(t, "-deps", "./recipes") {
		if dep == client {
			t.Errorf("go list -deps ./recipes has %s: a recipe returns a recipes.Build, and worker/solve solves it", dep)
		}
	}
}
