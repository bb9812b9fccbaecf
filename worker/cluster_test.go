package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/dockertest"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
	"github.com/lanternfarm/lantern/worker"
)

// nodeEnv, set in the environment of this test binary, makes it a node of
// a NATS cluster (the embedded server, natsserver.Start) instead of running
// tests: a process of its own, which a test can kill -9.
const nodeEnv = "LANTERN_TEST_NATS_NODE"

// clusterNode is what a node process is told.
type clusterNode struct {
	Name    string
	Dir     string // the node's own files
	Auth    string // the farm's identities, shared by every node
	Port    int
	Cluster string
	Routes  []string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		os.Exit(runNode(spec))
	}
	code := m.Run()
	dockertest.Stop() // the dockerd of TestStringerOnDockerEngine
	os.Exit(code)
}

// runNode runs one node of a cluster until SIGTERM (or SIGKILL): it says
// "ready" on stdout once it takes clients.
func runNode(spec string) int {
	var n clusterNode
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 2
	}
	auth, err := natsauth.Open(n.Auth)
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := natsserver.Start(ctx, natsserver.Options{
		Dir: n.Dir, Port: n.Port, Name: n.Name, Auth: auth,
		Cluster: n.Cluster, Routes: n.Routes,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	fmt.Println("ready")
	<-ctx.Done()
	s.Shutdown()
	return 0
}

// natsCluster is three node processes on 127.0.0.1.
type natsCluster struct {
	t     *testing.T
	auth  *natsauth.Farm
	nodes []*nodeProc
}

type nodeProc struct {
	spec clusterNode
	cmd  *exec.Cmd
}

func (n *nodeProc) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.spec.Port) }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	// Made before any node reads the directory.
	if _, err := auth.RoutePassword(); err != nil {
		t.Fatal(err)
	}
	c := &natsCluster{t: t, auth: auth}
	var routes []string
	for i := range size {
		cport := freePort(t)
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(cport))
		c.nodes = append(c.nodes, &nodeProc{spec: clusterNode{
			Name: "n" + strconv.Itoa(i), Dir: filepath.Join(dir, "n"+strconv.Itoa(i)), Auth: filepath.Join(dir, "auth"),
			Port: freePort(t), Cluster: "127.0.0.1:" + strconv.Itoa(cport),
		}})
	}
	for _, n := range c.nodes {
		n.spec.Routes = routes
	}
	// All at once: each waits for the others' routes.
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { c.start(n) })
	}
	wg.Wait()
	return c
}

// start starts node n's process and returns once it takes clients.
func (c *natsCluster) start(n *nodeProc) {
	spec, _ := json.Marshal(n.spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
	logf, err := os.OpenFile(filepath.Join(c.t.TempDir(), n.spec.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Error(err)
		return
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Error(err)
		return
	}
	if err := cmd.Start(); err != nil {
		c.t.Errorf("start node %s: %v", n.spec.Name, err)
		return
	}
	n.cmd = cmd
	c.t.Cleanup(func() {
		c.kill(n)
		if c.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			c.t.Logf("node %s's log:\n%s", n.spec.Name, tail(b, "Error trying to connect to route", "has NO quorum"))
		}
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			b, _ := os.ReadFile(logf.Name())
			c.t.Errorf("node %s did not start:\n%s", n.spec.Name, b)
		}
	case <-time.After(natstest.Patience):
		c.t.Errorf("node %s did not start within %v", n.spec.Name, natstest.Patience)
	}
}

// kill kills node n with SIGKILL and waits for it to be gone.
func (c *natsCluster) kill(n *nodeProc) {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	n.cmd = nil
}

func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url())
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) node(name string) *nodeProc {
	for _, n := range c.nodes {
		if n.spec.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// push sends the farm's accounts to the cluster, as a running scheduler
// does.
func (c *natsCluster) push() {
	c.t.Helper()
	sys, err := nats.Connect(c.urls(), nats.UserCredentials(c.auth.SystemCredsFile()))
	if err != nil {
		c.t.Fatalf("connect as the system user: %v", err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(c.t.Context(), natstest.Patience)
	defer cancel()
	if err := c.auth.Push(ctx, sys, nil); err != nil {
		c.t.Fatalf("push the accounts: %v", err)
	}
}

// creds writes new credentials of a user of role to a file.
func (c *natsCluster) creds(name string, role natsq.Role, builder lantern.Digest) string {
	c.t.Helper()
	b, _, err := c.auth.Creds(name, role, builder)
	if err != nil {
		c.t.Fatal(err)
	}
	file := filepath.Join(c.t.TempDir(), name+".creds")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return file
}

// gatedBuilder builds like fakeBuilder, the same bytes for every builder,
// but holds each build until the test opens its gate: the job is a
// worker's while the test kills a node.
type gatedBuilder struct {
	started chan lantern.Digest // the builder, as each build starts
	builder lantern.Digest
	gate    *gate
}

type gate struct {
	mu   sync.Mutex
	open chan struct{}
}

func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// release lets the builds held now go on, and holds the next ones.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
	g.open = make(chan struct{})
}

func (b *gatedBuilder) Recipe() lantern.Recipe { return (&fakeBuilder{}).Recipe() }

func (b *gatedBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*worker.Result, error) {
	open := b.gate.wait()
	b.started <- b.builder
	select {
	case <-open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	fb := &fakeBuilder{out: func(j lantern.Job) (string, error) { return "binary of " + j.Source.String(), nil }}
	return fb.Build(ctx, job, work, log)
}

// TestClusterRidesOutLostNodes: on a NATS cluster of three nodes (processes
// of the embedded server) with streams of 3 replicas (a farm set up with one
// and brought to three by the scheduler), a scheduler and two
// workers connected to all three, kill -9 of a node while both workers
// hold a job loses nothing: the job completes with one attestation per
// builder and the verdict is reproduced; the node restarts and catches up.
// Then the node that leads the jobs stream is killed: the same.
func TestClusterRidesOutLostNodes(t *testing.T) {
	c := startCluster(t, 3)
	// What the scheduler and the workers logged, shown if the test fails.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "farm.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("the farm's log:\n%s", tail(b, "level=INFO", "no responders"))
		}
	})
	log := natstest.WatchPermissions(t, slog.New(slog.NewTextHandler(logFile, nil)))
	a, b := mustKey(t), mustKey(t)
	credsA := c.creds("builder-a", natsq.RoleBuilder, a.ID())
	credsB := c.creds("builder-b", natsq.RoleBuilder, b.ID())
	c.push()

	// A farm set up with one replica, as before the cluster, with its
	// builders: the scheduler with 3 replicas brings its streams,
	// buckets and consumers to 3.
	old := connectScheduler(t, c, natsq.Config{}, log)
	setup(t, old)
	for _, k := range []*keys.Private{a, b} {
		if err := old.EnsureBuilder(t.Context(), k.ID(), true); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	// The scheduler, on all three nodes.
	q := connectScheduler(t, c, natsq.Config{Replicas: 3}, log)
	setup(t, q)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "scheduler.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	claimKey := mustKey(t)
	s, err := scheduler.New(scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: 2, ClaimKeys: []*keys.Public{claimKey.Public()},
		Builders: []*keys.Public{a.Public(), b.Public()}, Backlog: true, Fetch: netguard.Policy{AllowPrivate: true, AllowHTTP: true}}, q, st, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		if err := s.Run(runCtx); runCtx.Err() == nil {
			t.Errorf("scheduler Run ended: %v", err)
		}
		close(runDone)
	}()
	t.Cleanup(func() { stopRun(); <-runDone })
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	eventually(t, "the builders' consumers", func() bool {
		for _, k := range []*keys.Private{a, b} {
			jc, err := q.Jobs(t.Context(), k.ID())
			if err != nil {
				return false
			}
			jc.Close()
		}
		return true
	})
	f := &farm{t: t, sched: q, log: log, api: api.URL, claimKey: claimKey}

	// A raw JetStream view of the farm, for the streams' replicas.
	nc, err := nats.Connect(c.urls(), nats.UserCredentials(c.auth.SchedulerCredsFile()), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{natsq.StreamClaims, natsq.StreamJobs, natsq.StreamResults, natsq.StreamDead,
		"OBJ_" + natsq.BucketObjects, "OBJ_" + natsq.BuilderBucket(a.ID()), "OBJ_" + natsq.BuilderBucket(b.ID())}
	for _, name := range streams {
		eventually(t, "stream "+name+" with 3 replicas", func() bool {
			info := streamInfo(t, js, name)
			return info.Config.Replicas == 3 && len(info.Cluster.Replicas) == 2
		})
	}
	// And every replica caught up before a node is lost: a stream brought
	// from one replica to three is only on its first node until the new
	// replicas have copied it, and the loss of that node would leave it
	// without a leader until the node came back.
	eventually2(t, "every stream and consumer current on all three nodes", func() bool {
		for _, s := range streams {
			if !caughtUp(t, js, s, c.nodes[0].spec.Name) {
				return false
			}
		}
		return true
	})
	for _, k := range []*keys.Private{a, b} {
		eventually(t, "consumer "+natsq.ConsumerName(k.ID())+" with a leader and 2 replicas", func() bool {
			ci, err := js.Consumer(t.Context(), natsq.StreamJobs, natsq.ConsumerName(k.ID()))
			if err != nil {
				return false
			}
			cl := ci.CachedInfo().Cluster
			return current(cl, c.nodes[0].spec.Name)
		})
	}

	// Two workers, each on all three nodes, each holding its build until
	// the gate opens.
	g := &gate{open: make(chan struct{})}
	started := make(chan lantern.Digest, 16)
	for _, w := range []struct {
		key   *keys.Private
		creds string
	}{{a, credsA}, {b, credsB}} {
		wq, err := natsq.Connect(t.Context(), c.urls(), natsq.Config{Creds: w.creds, Role: natsq.RoleBuilder, Builder: w.key.ID()}, log)
		if err != nil {
			t.Fatal(err)
		}
		gb := &gatedBuilder{started: started, builder: w.key.ID(), gate: g}
		wk, err := worker.New(worker.Config{Key: w.key, ClaimKeys: []*keys.Public{claimKey.Public()}, Builders: map[string]worker.Builder{"go": gb},
			WorkDir: t.TempDir(), Heartbeat: 200 * time.Millisecond, RetryDelay: 100 * time.Millisecond}, wq, log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			if err := wk.Run(ctx); err != nil {
				t.Errorf("worker Run: %v", err)
			}
			close(done)
		}()
		t.Cleanup(func() { cancel(); g.release(); <-done; wq.Close() })
	}

	round := func(name string, victim func() *nodeProc) {
		t.Helper()
		job := f.claim(name)
		// Both builders hold the job.
		held := map[lantern.Digest]bool{}
		for len(held) < 2 {
			select {
			case d := <-started:
				held[d] = true
			case <-time.After(natstest.Patience):
				t.Fatalf("%s: builds started by %d builders, want 2", name, len(held))
			}
		}
		n := victim()
		t.Logf("%s: kill -9 node %s while both builders hold the job", name, n.spec.Name)
		c.kill(n)
		g.release()
		eventually(t, name+" reproduced", func() bool {
			v := f.source(job)
			return len(v.Verdicts) == 1 && v.Verdicts[0].Status == lantern.StatusReproduced
		})
		v := f.source(job)
		got := map[lantern.Digest]int{}
		for _, at := range v.Attestations {
			got[at.Builder]++
		}
		if len(v.Attestations) != 2 || got[a.ID()] != 1 || got[b.ID()] != 1 {
			t.Errorf("%s: attestations %+v, want one of each builder", name, v.Attestations)
		}
		// No build ran again: a third start would be a redelivery.
		select {
		case d := <-started:
			t.Errorf("%s: builder %s built the job again", name, d.Short())
		default:
		}

		c.start(n)
		t.Logf("%s: node %s restarted", name, n.spec.Name)
		eventually2(t, name+": node "+n.spec.Name+" caught up", func() bool {
			for _, s := range streams {
				if !caughtUp(t, js, s, n.spec.Name) {
					return false
				}
			}
			return true
		})
	}

	round("example.org/cluster-one", func() *nodeProc { return c.nodes[0] })
	round("example.org/cluster-leader", func() *nodeProc {
		return c.node(streamInfo(t, js, natsq.StreamJobs).Cluster.Leader)
	})
}

// connectScheduler connects to every node of c as the scheduler.
func connectScheduler(t *testing.T, c *natsCluster, cfg natsq.Config, log *slog.Logger) *natsq.Queue {
	t.Helper()
	cfg.Creds, cfg.Role = c.auth.SchedulerCredsFile(), natsq.RoleScheduler
	q, err := natsq.Connect(t.Context(), c.urls(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// setup sets the farm up, once the cluster has elected its meta leader.
func setup(t *testing.T, q *natsq.Queue) {
	t.Helper()
	deadline := time.Now().Add(natstest.Patience)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := q.Setup(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Setup on the cluster: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamInfo reads a stream's info, waiting through elections.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	eventually(t, "stream "+name+"'s info", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, name)
		if err != nil {
			return false
		}
		info = st.CachedInfo()
		return info.Cluster != nil && info.Cluster.Leader != ""
	})
	return info
}

// caughtUp reports whether stream has its leader and every replica current,
// with nothing to catch up, node among them.
func caughtUp(t *testing.T, js jetstream.JetStream, stream, node string) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return false
	}
	if !current(st.CachedInfo().Cluster, node) {
		return false
	}
	// And the stream's consumers, which have raft groups of their own.
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		ci, err := st.Consumer(ctx, name)
		if err != nil || !current(ci.CachedInfo().Cluster, node) {
			return false
		}
	}
	return names.Err() == nil
}

// current reports whether a raft group has a leader and its two replicas
// current, node among them.
func current(cl *jetstream.ClusterInfo, node string) bool {
	if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
		return false
	}
	seen := cl.Leader == node
	for _, r := range cl.Replicas {
		if !r.Current || r.Offline || r.Lag != 0 {
			return false
		}
		seen = seen || r.Name == node
	}
	return seen
}

// eventually2 is eventually with the patience of a cluster that restarts a
// node: its raft groups catch up one by one.
func eventually2(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * natstest.Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail is the last 100 lines of log that contain none of skip.
func tail(log []byte, skip ...string) string {
	var keep []string
	for _, l := range strings.Split(string(log), "\n") {
		if !slices.ContainsFunc(skip, func(s string) bool { return strings.Contains(l, s) }) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-100):], "\n")
}
