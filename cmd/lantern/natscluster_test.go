package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
)

// natsCluster is a NATS cluster of three nats-server processes
// (natsServerBin) on 127.0.0.1, set up as an operator sets up a farm's
// own cluster: each node's configuration is what `lantern scheduler
// --print-nats-config --nats-listen ... --nats-name ... --nats-cluster ...
// --nats-routes ...` prints for it (its name, the farm's operator,
// accounts and route secret), and the command line adds its monitoring
// port, which is how the test sees a node's own JetStream state. Each node keeps its store and its log across restarts; the logs
// are shown if the test fails.
//
// Use: c := startNATSCluster(t, dir, data); c.urls() for --nats;
// c.kill(n) and c.restart(n) for kill -9 and a restart;
// c.streamLeader(name) for the node that leads a stream; c.caughtUp(n)
// (or waitCaughtUp) once a restarted node should hold everything again.
type natsCluster struct {
	t     *testing.T
	nodes []*natsNode
}

// natsNode is one nats-server of a natsCluster.
type natsNode struct {
	name    string // its server_name: n0, n1, n2
	url     string // its client URL, nats://127.0.0.1:PORT
	dir     string // its working directory: nats.conf, its store, its log
	monitor string // its monitoring endpoint, http://127.0.0.1:PORT
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has exited
}

// startNATSCluster starts three nodes in dir (each in dir/nN) for the farm
// whose data directory is data (its NATS identities are made there if
// new), and returns once every node is healthy (routed to the others, in
// contact with an elected JetStream meta leader) and the cluster places
// replicated streams (waitPlacement). Builders enrolled
// later need no new configuration (their users are signed by the farm's
// accounts); a builder removed later is revoked by the scheduler's push.
func startNATSCluster(t *testing.T, dir, data string) *natsCluster {
	t.Helper()
	bin := natsServerBin(t)
	c := &natsCluster{t: t}
	var routes, listens []string
	for i := range 3 {
		n := &natsNode{
			name:    fmt.Sprintf("n%d", i),
			dir:     filepath.Join(dir, fmt.Sprintf("n%d", i)),
			monitor: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		}
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		n.url = "nats://" + listen
		listens = append(listens, listen)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)))
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		conf := runLantern(t, dir, nil, "scheduler", "--data", data, "--print-nats-config", "--nats-listen", listens[i], "--nats-name", n.name,
			"--nats-cluster", strings.TrimPrefix(routes[i], "nats://"), "--nats-routes", strings.Join(routes, ",")).must(t, "print-nats-config of node "+n.name).stdout
		if err := os.WriteFile(filepath.Join(n.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.kill(n)
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(n.dir, "nats-server.log"))
				// Without the lines of each second a node was down.
				var keep []string
				for l := range strings.Lines(string(b)) {
					if !strings.Contains(l, "Error trying to connect to route") {
						keep = append(keep, l)
					}
				}
				t.Logf("nats-server %s's log (last 150 lines, without failed route dials):\n%s", n.name, lastLines(strings.Join(keep, ""), 150))
			}
		}
	})
	for _, n := range c.nodes {
		c.launch(bin, n)
	}
	for _, n := range c.nodes {
		c.waitHealthz(n, "", 2*time.Minute)
	}
	c.waitPlacement(filepath.Join(data, "nats-auth", natsauth.SchedulerCreds))
	return c
}

// waitPlacement waits until the cluster places a stream of 3 replicas with
// a cap on its bytes, as the farm's object buckets are, by making one in
// the farm's account with creds (the scheduler's) and removing it. A new
// cluster can refuse that ("no suitable peers") for a while after it is
// healthy, until its meta leader has heard every node's JetStream limits;
// `lantern scheduler` started meanwhile exits (seen on a loaded machine:
// "create object store LANTERN_OBJECTS_…: err_code=10005").
func (c *natsCluster) waitPlacement(creds string) {
	c.t.Helper()
	nc, err := nats.Connect(c.urls(), nats.UserCredentials(creds))
	if err != nil {
		c.t.Fatalf("connect to the cluster with %s: %v", creds, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := jetstream.StreamConfig{Name: "TEST_PLACEMENT", Subjects: []string{"test.placement"}, Replicas: 3, MaxBytes: 1 << 20}
	var first error
	for tries, deadline := 1, time.Now().Add(2*time.Minute); ; tries++ {
		ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
		_, err := js.CreateStream(ctx, cfg)
		if err == nil {
			err = js.DeleteStream(ctx, cfg.Name)
		}
		cancel()
		if err == nil {
			if first != nil {
				c.t.Logf("the cluster placed a stream of 3 replicas at try %d; the first said: %v", tries, first)
			}
			return
		}
		if first == nil {
			first = err
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the cluster does not place a stream of 3 replicas: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// urls is the nodes' client URLs, comma-separated, as --nats takes them.
func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url)
	}
	return strings.Join(us, ",")
}

// node returns the node named name.
func (c *natsCluster) node(name string) *natsNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("the cluster has no node %q", name)
	return nil
}

// launch starts n's nats-server, its output appended to its log.
func (c *natsCluster) launch(bin string, n *natsNode) {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(n.dir, "nats-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== the test starts node %s at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
	port := strings.TrimPrefix(n.monitor, "http://127.0.0.1:")
	// Relative directories in nats.conf (the store, the resolver's) are
	// the node's own directory.
	cmd := exec.Command(bin, "-c", "nats.conf", "--http_port", port) // monitoring listens on the client host, 127.0.0.1
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	exited := n.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
}

// kill kills n's nats-server with SIGKILL and returns once it is gone.
func (c *natsCluster) kill(n *natsNode) {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// restart starts n's nats-server again, with its configuration and store,
// and returns once it takes clients; it may still be catching up (see
// caughtUp).
func (c *natsCluster) restart(n *natsNode) {
	c.t.Helper()
	if n.cmd != nil {
		c.t.Fatalf("restart node %s: it runs", n.name)
	}
	c.launch(natsServerBin(c.t), n)
	c.waitHealthz(n, "?js-enabled-only=true", 2*time.Minute)
}

// waitHealthz waits until n's /healthz with query answers 200: with no
// query, until its JetStream is current with the cluster.
func (c *natsCluster) waitHealthz(n *natsNode, query string, within time.Duration) {
	c.t.Helper()
	var last error
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		if last = n.healthz(query); last == nil {
			return
		}
		select {
		case <-n.exited:
			b, _ := os.ReadFile(filepath.Join(n.dir, "nats-server.log"))
			c.t.Fatalf("nats-server %s exited:\n%s", n.name, lastLines(string(b), 60))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server %s not healthy within %s: %v", n.name, within, last)
		}
	}
}

// healthz is nil if n's /healthz with query answers 200, else what it said.
func (n *natsNode) healthz(query string) error {
	resp, err := http.Get(n.monitor + "/healthz" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %s: /healthz%s = %d %s", n.name, query, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// jsz is n's own view of JetStream: every stream and consumer it holds,
// with their state and raft groups, as its /jsz shows them.
func (n *natsNode) jsz() (*server.JSInfo, error) {
	resp, err := http.Get(n.monitor + "/jsz?accounts=true&streams=true&consumers=true&config=true&raft=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s: /jsz = %d", n.name, resp.StatusCode)
	}
	var info server.JSInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("node %s: /jsz: %w", n.name, err)
	}
	return &info, nil
}

// streams is n's streams by name (the farm's account's).
func (n *natsNode) streams() (map[string]server.StreamDetail, error) {
	info, err := n.jsz()
	if err != nil {
		return nil, err
	}
	out := map[string]server.StreamDetail{}
	for _, a := range info.AccountDetails {
		for _, s := range a.Streams {
			out[s.Name] = s
		}
	}
	return out, nil
}

// running is the nodes whose process runs.
func (c *natsCluster) running() []*natsNode {
	var out []*natsNode
	for _, n := range c.nodes {
		if n.cmd != nil {
			out = append(out, n)
		}
	}
	return out
}

// streamLeader returns the running node that leads stream (by its own
// account), waiting up to a minute for one to be elected.
func (c *natsCluster) streamLeader(stream string) *natsNode {
	c.t.Helper()
	var last error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var n *natsNode
		if n, last = c.leaderOf(stream); last == nil {
			return n
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: no leader within a minute: %v", stream, last)
		}
	}
}

// leaderOf returns the running node that says it leads stream.
func (c *natsCluster) leaderOf(stream string) (*natsNode, error) {
	for _, n := range c.running() {
		ss, err := n.streams()
		if err != nil {
			return nil, err
		}
		if s, ok := ss[stream]; ok && s.Cluster != nil && s.Cluster.Leader == n.name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no running node leads stream %s", stream)
}

// caughtUp is nil once n holds everything the cluster holds, else says
// what it lacks: n is healthy by its own /healthz (its JetStream current
// with the meta leader, its streams and consumers with theirs); every
// replicated stream's leader counts n among its replicas, every replica
// current with no lag, and n's own copy of the stream has the leader's
// messages; every consumer's leader counts n among its replicas, all
// current with no lag, and n holds the consumer.
func (c *natsCluster) caughtUp(n *natsNode) error {
	if n.cmd == nil {
		return fmt.Errorf("node %s does not run", n.name)
	}
	if err := n.healthz(""); err != nil {
		return err
	}
	own, err := n.streams()
	if err != nil {
		return err
	}
	// Each running node's view; the leaders' count.
	views := map[string]map[string]server.StreamDetail{}
	names := map[string]bool{}
	for _, m := range c.running() {
		ss, err := m.streams()
		if err != nil {
			return err
		}
		views[m.name] = ss
		for name := range ss {
			names[name] = true
		}
	}
	if len(names) == 0 {
		return errors.New("the cluster has no streams")
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		var lead *server.StreamDetail
		for m, ss := range views {
			if s, ok := ss[name]; ok && s.Cluster != nil && s.Cluster.Leader == m {
				lead = &s
			}
		}
		if lead == nil {
			return fmt.Errorf("stream %s has no leader", name)
		}
		if lead.Config == nil || lead.Config.Replicas < 2 {
			continue
		}
		if err := groupCurrent("stream "+name, lead.Cluster, lead.Config.Replicas, n.name); err != nil {
			return err
		}
		mine, ok := own[name]
		if !ok {
			return fmt.Errorf("node %s holds no stream %s", n.name, name)
		}
		if mine.State.LastSeq != lead.State.LastSeq || mine.State.Msgs != lead.State.Msgs {
			return fmt.Errorf("node %s's stream %s: last sequence %d, %d messages; its leader %s's: %d, %d",
				n.name, name, mine.State.LastSeq, mine.State.Msgs, lead.Cluster.Leader, lead.State.LastSeq, lead.State.Msgs)
		}
		for _, ci := range lead.Consumer {
			var clead *server.ConsumerInfo
			for m, ss := range views {
				for _, o := range ss[name].Consumer {
					if o.Name == ci.Name && o.Cluster != nil && o.Cluster.Leader == m {
						clead = o
					}
				}
			}
			if clead == nil {
				return fmt.Errorf("consumer %s of stream %s has no leader", ci.Name, name)
			}
			r := lead.Config.Replicas
			if clead.Config != nil && clead.Config.Replicas > 0 {
				r = clead.Config.Replicas
			}
			if r < 2 {
				continue
			}
			if err := groupCurrent("consumer "+ci.Name+" of stream "+name, clead.Cluster, r, n.name); err != nil {
				return err
			}
			if !slices.ContainsFunc(mine.Consumer, func(o *server.ConsumerInfo) bool { return o.Name == ci.Name }) {
				return fmt.Errorf("node %s holds no consumer %s of stream %s", n.name, ci.Name, name)
			}
		}
	}
	return nil
}

// groupCurrent is nil if a raft group's leader reports its replicas-1
// others current with no lag, node among the group.
func groupCurrent(what string, cl *server.ClusterInfo, replicas int, node string) error {
	if len(cl.Replicas) != replicas-1 {
		return fmt.Errorf("%s: leader %s has %d replicas, want %d", what, cl.Leader, len(cl.Replicas), replicas-1)
	}
	in := cl.Leader == node
	for _, r := range cl.Replicas {
		if !r.Current || r.Offline || r.Lag != 0 || r.Pending {
			return fmt.Errorf("%s: leader %s says replica %s is current %v, offline %v, lag %d, pending %v", what, cl.Leader, r.Name, r.Current, r.Offline, r.Lag, r.Pending)
		}
		in = in || r.Name == node
	}
	if !in {
		return fmt.Errorf("%s: node %s is not in its group (leader %s)", what, node, cl.Leader)
	}
	return nil
}

// waitCaughtUp waits until n has caught up (see caughtUp).
func (c *natsCluster) waitCaughtUp(n *natsNode, within time.Duration) {
	c.t.Helper()
	var last error
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		if last = c.caughtUp(n); last == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %s did not catch up within %s: %v", n.name, within, last)
		}
	}
}

// TestNATSCluster tries the harness on a scheduler's streams, with no
// builds: each node holds every stream and consumer, 3 replicas. With a
// node killed that does not lead the meta group, the others are healthy
// but not caught up: caughtUp names the killed node's replicas; restarted,
// it catches up. With the leader of the jobs stream killed, another node
// leads it and no node is caught up; restarted, the old leader catches up.
func TestNATSCluster(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen maint")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "alice").must(t, "keygen alice")
	runLantern(t, dir, nil, "builder", "add", "alice", "alice.pub", "--data", data).must(t, "builder add")
	c := startNATSCluster(t, dir, data)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sched := startLanternProc(t, dir, "scheduler", "--data", data, "--nats", c.urls(), "--nats-replicas", "3",
		"--listen", addr, "--claim-key", "maint.pub", "--threshold", "1")
	defer sched.stop(t, 60*time.Second)
	api := &farmAPI{t: t, base: "http://" + addr, logs: sched.log}
	api.waitHealthy(2 * time.Minute)
	for _, n := range c.nodes {
		c.waitCaughtUp(n, 2*time.Minute)
	}
	ss, err := c.nodes[0].streams()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"LANTERN_CLAIMS", "LANTERN_JOBS", "LANTERN_RESULTS"} {
		if s, ok := ss[name]; !ok || s.Config == nil || s.Config.Replicas != 3 {
			t.Errorf("node n0's stream %s: %+v, want one of 3 replicas", name, s.Config)
		}
	}
	// The consumers too, which caughtUp checks: alice's job consumer, of
	// its stream's replicas (0).
	alice := natsq.ConsumerName(keyID(t, filepath.Join(dir, "alice.pub")))
	if ci := c.consumer(natsq.StreamJobs, alice); ci.Config == nil || (ci.Config.Replicas != 0 && ci.Config.Replicas != 3) || len(ci.Cluster.Replicas) != 2 {
		t.Errorf("consumer %s: %d replicas, cluster %+v; want 3 replicas", alice, ci.Config.Replicas, ci.Cluster)
	}
	if !slices.ContainsFunc(ss[natsq.StreamJobs].Consumer, func(o *server.ConsumerInfo) bool { return o.Name == alice }) {
		t.Errorf("node n0 does not list consumer %s of %s", alice, natsq.StreamJobs)
	}

	// A node that does not lead the meta group: the others stay healthy,
	// and caughtUp names what they lack, the killed node's replicas.
	info, err := c.nodes[0].jsz()
	if err != nil || info.Meta == nil || info.Meta.Leader == "" {
		t.Fatalf("node n0's /jsz names no meta leader: %v", err)
	}
	var f *natsNode
	for _, n := range c.nodes {
		if n.name != info.Meta.Leader {
			f = n
		}
	}
	c.kill(f)
	lacks(t, c, f)
	c.restart(f)
	c.waitCaughtUp(f, 2*time.Minute)

	// The jobs stream's leader: another node leads it.
	leader := c.streamLeader("LANTERN_JOBS")
	c.kill(leader)
	if next := c.streamLeader("LANTERN_JOBS"); next == leader {
		t.Fatalf("killed node %s still leads LANTERN_JOBS", leader.name)
	}
	if err := c.caughtUp(leader); err == nil {
		t.Errorf("caughtUp(%s) = nil for the killed node", leader.name)
	}
	lacks(t, c, leader)
	c.restart(leader)
	c.waitCaughtUp(leader, 2*time.Minute)
	if sched.exitedNow() {
		t.Errorf("the scheduler exited:\n%s", sched.log)
	}
}

// lacks waits until caughtUp of every running node of c names killed's
// replicas: the leaders see it gone within seconds (until then they may
// still call it current), and the streams it led elect new leaders.
func lacks(t *testing.T, c *natsCluster, killed *natsNode) {
	t.Helper()
	for _, n := range c.running() {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			err := c.caughtUp(n)
			if err != nil && strings.Contains(err.Error(), "replica "+killed.name+" ") {
				t.Logf("with node %s killed, caughtUp(%s): %v", killed.name, n.name, err)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("with node %s killed, caughtUp(%s) = %v, want an error about the replica %s", killed.name, n.name, err, killed.name)
			}
		}
	}
}

// consumer returns the consumer of stream named name as its leader (a
// running node) reports it — its deliveries, acks and redeliveries —
// waiting up to a minute for one to be elected.
func (c *natsCluster) consumer(stream, name string) *server.ConsumerInfo {
	c.t.Helper()
	var last error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var ci *server.ConsumerInfo
		if ci, last = c.consumerLeader(stream, name); last == nil {
			return ci
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("consumer %s of stream %s: no leader within a minute: %v", name, stream, last)
		}
	}
}

func (c *natsCluster) consumerLeader(stream, name string) (*server.ConsumerInfo, error) {
	for _, n := range c.running() {
		ss, err := n.streams()
		if err != nil {
			return nil, err
		}
		for _, o := range ss[stream].Consumer {
			if o.Name == name && o.Cluster != nil && o.Cluster.Leader == n.name {
				return o, nil
			}
		}
	}
	return nil, fmt.Errorf("no running node leads consumer %s of stream %s", name, stream)
}

// leads is the streams n leads, by its own account.
func (n *natsNode) leads() ([]string, error) {
	ss, err := n.streams()
	if err != nil {
		return nil, err
	}
	var out []string
	for name, s := range ss {
		if s.Cluster != nil && s.Cluster.Leader == n.name {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}
