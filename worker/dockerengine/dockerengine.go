// Package dockerengine is the worker's adapter to Docker Engine's built-in
// BuildKit: a worker on a machine that has Docker Engine rather than a
// buildkitd of its own builds there, with the same LLB, sandbox and outputs.
//
// Connect dials the BuildKit inside the Engine the way buildx's "docker"
// driver does: through the Engine's API, whose /grpc endpoint, hijacked as
// h2c, carries BuildKit's control API, and whose /session endpoint carries
// the build's session (the local sources a build reads, the tar stream of
// its outputs). What it returns is the same *client.Client a buildkitd
// gives (package buildkit), so everything above solves on either without
// knowing which.
//
// # Which Engine
//
// The Docker client negotiates the API version down to the Engine's; it
// speaks API 1.40 (Engine 19.03) and later. Connect then asks the Engine's
// BuildKit which LLB capabilities it has and refuses one without those the
// recipes' builds use (Required), naming them: a worker finds out when it
// starts, not at its first job, which BuildKit would fail with "unknown
// API capability". Debian's docker.io, Engine 20.10.24 (API 1.41, BuildKit
// v0.8), is the one the tests run, and the oldest tried (MinEngine).
//
// A worker's caps on a build step's memory and processes (worker.Caps)
// and the recipes' sized scratch space need more: BuildKit v0.10's cgroup
// parent and tmpfs size, which Engine 23.0 has (MinEngineCaps). On an
// older Engine a worker runs with its caps set to 0 and its builds'
// scratch space unsized (Engine.HoldsCaps). Builds give the same bytes
// either way: the caps and sizes bound a build, they do not change it.
//
// # The sandbox
//
// The Engine's BuildKit runs a step as a buildkitd does: the same
// environment, user, umask, devices, limits and network namespace
// (TestGenericSameSandbox compares them). One difference is known: on
// Engine 20.10 (BuildKit v0.8) a step's process has no supplementary
// groups, where a buildkitd's has group 0; a build that records them (the
// output of id, say) differs between the two, as it would between two
// machines.
//
// # Network
//
// Every step Lantern runs asks for no network (llb.NetModeNone); in the
// Engine's BuildKit such a step runs in a network namespace of its own with
// only a loopback interface, as in a buildkitd's. The Engine's own network
// settings (its bridge, its iptables rules) play no part.
//
// # What the Engine must allow
//
// The Engine pulls builder images itself, with its own registry settings:
// a registry on the machine (127.0.0.0/8) it reaches over plain HTTP by
// default, others as its daemon.json says (insecure-registries,
// registry-mirrors). A worker's --registry-http is for the buildkitd it
// starts and does not apply.
package dockerengine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	bkclient "github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	dockerclient "github.com/moby/moby/client"
)

// DefaultHost is the Engine's address where neither --docker-host nor
// DOCKER_HOST says otherwise: its socket on the machine.
const DefaultHost = "unix:///var/run/docker.sock"

// DefaultHostFromEnv returns the Engine's address a worker uses by
// default: DOCKER_HOST, as the docker CLI reads it, else DefaultHost.
func DefaultHostFromEnv() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return DefaultHost
}

// MinEngine is the oldest Docker Engine whose BuildKit has every
// capability in Required. Debian's docker.io 20.10.24 (API 1.41) has them.
const MinEngine = "20.10"

// MinEngineCaps is the oldest Docker Engine whose BuildKit can hold a
// worker's caps (CapsRequired): BuildKit v0.10, in Engine 23.0.
const MinEngineCaps = "23.0"

// Required are the LLB capabilities of the recipes' builds (recipes.GoLLB,
// recipes.GenericLLB and the toolchain's send) that an Engine's BuildKit
// must have: Connect refuses an Engine without one. TestRequired keeps the
// list whole.
var Required = []apicaps.CapID{
	pb.CapSourceLocal,
	pb.CapSourceLocalSharedKeyHint,
	pb.CapSourceLocalUnique,
	pb.CapSourceImage,
	pb.CapExecMetaBase,
	pb.CapExecMetaNetwork,
	pb.CapExecMountBind,
	pb.CapExecMountTmpfs,
	pb.CapFileBase,
	pb.CapConstraints,
	pb.CapPlatform,
	pb.CapMetaDescription,
	pb.CapMetaIgnoreCache,
}

// CapsRequired are the LLB capabilities a worker's caps (worker.Caps) and
// the recipes' sized scratch space need besides: a build step put in the
// cgroup that holds its caps, and a tmpfs of a size. An Engine's BuildKit
// without them refuses a definition that asks for them ("unknown API
// capability"), so on such an Engine a worker runs with its caps off and
// its builds' scratch space unsized (worker.GoBuilder.UnsizedScratch);
// the bytes built are the same.
var CapsRequired = []apicaps.CapID{
	pb.CapExecMetaCgroupParent,
	pb.CapExecMountTmpfsSize,
}

// Errors of Connect and HoldsCaps, for errors.Is; each message names the
// Engine version that has what is missing.
var (
	ErrTooOld = errors.New("docker engine too old")
	ErrNoCaps = errors.New("docker engine cannot hold the build caps")
)

// Engine is a connection to a Docker Engine's built-in BuildKit.
type Engine struct {
	// Client is the BuildKit client that solves through the Engine.
	Client *bkclient.Client
	// Version is the Engine's version ("20.10.24+dfsg1"), APIVersion the
	// API version the client negotiated with it ("1.41").
	Version, APIVersion string

	host   string
	api    *dockerclient.Client
	noCaps []string // CapsRequired the Engine's BuildKit lacks
}

// Connect connects to the BuildKit built into the Docker Engine at host
// (unix:///var/run/docker.sock, or tcp://HOST:PORT), after checking that
// the Engine answers, that its BuildKit answers and has a worker, and that
// it has the capabilities the recipes use (Required). A tcp:// host is
// reached over TLS with the client certificate in tlsDir (ca.pem, cert.pem,
// key.pem, as in the docker CLI's DOCKER_CERT_PATH), the Engine's
// certificate always verified against its ca.pem; only an Engine on the
// loopback interface may be reached without TLS.
func Connect(ctx context.Context, host, tlsDir string) (*Engine, error) {
	if err := checkHost(host, tlsDir); err != nil {
		return nil, err
	}
	opts := []dockerclient.Opt{dockerclient.WithHost(host), dockerclient.WithAPIVersionNegotiation()}
	if tlsDir != "" {
		opts = append(opts, dockerclient.WithTLSClientConfig(filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")))
	}
	api, err := dockerclient.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine at %s: %w", host, err)
	}
	e, err := connect(ctx, api, host)
	if err != nil {
		api.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the BuildKit client and the Engine's API client.
func (e *Engine) Close() error {
	return errors.Join(e.Client.Close(), e.api.Close())
}

// String names the Engine, its version and its address.
func (e *Engine) String() string {
	return fmt.Sprintf("Docker Engine %s (API %s) at %s", e.Version, e.APIVersion, e.host)
}

// HoldsCaps returns nil if the Engine's BuildKit can hold a worker's caps
// (CapsRequired), and else an ErrNoCaps error naming what it lacks and the
// Engine version that has it. The caps also need the Engine on the
// worker's own machine, where the worker makes their cgroups: its host
// must be a unix socket.
func (e *Engine) HoldsCaps() error {
	if len(e.noCaps) > 0 {
		return fmt.Errorf("%s: %w: its BuildKit lacks the LLB capabilities %s, so it can neither put a build step in the cgroup that caps it nor size its scratch space; Docker Engine %s or later has them",
			e, ErrNoCaps, strings.Join(e.noCaps, ", "), MinEngineCaps)
	}
	if !strings.HasPrefix(e.host, "unix://") {
		return fmt.Errorf("%s: %w: the caps hold through cgroups the worker makes on its own machine, so the Engine must be there too, reached on its unix socket", e, ErrNoCaps)
	}
	return nil
}

func connect(ctx context.Context, api *dockerclient.Client, host string) (*Engine, error) {
	ping, err := api.Ping(ctx, dockerclient.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		if strings.Contains(err.Error(), "minimum supported API version") {
			return nil, fmt.Errorf("docker engine at %s: %w: %v; Lantern needs Docker Engine %s or later", host, ErrTooOld, err, MinEngine)
		}
		hint := "is dockerd running there, and may this user open its socket?"
		if strings.Contains(err.Error(), "certificate") {
			hint = "is its certificate for that address, and signed by the CA in the TLS directory's ca.pem?"
		}
		return nil, fmt.Errorf("docker engine at %s does not answer: %w (%s)", host, err, hint)
	}
	if ping.OSType != "" && ping.OSType != "linux" {
		return nil, fmt.Errorf("docker engine at %s runs %s containers; Lantern's builds need a Linux engine", host, ping.OSType)
	}
	v, err := api.ServerVersion(ctx, dockerclient.ServerVersionOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker engine at %s: version: %w", host, err)
	}
	e := &Engine{Version: v.Version, APIVersion: api.ClientVersion(), host: host, api: api}

	// As buildx's docker driver: BuildKit's gRPC API on the Engine's /grpc,
	// the session on /session, each on a hijacked HTTP connection.
	c, err := bkclient.New(ctx, "",
		bkclient.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return api.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		bkclient.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return api.DialHijack(ctx, "/session", proto, meta)
		}))
	if err != nil {
		return nil, fmt.Errorf("%s: buildkit: %w", e, err)
	}
	e.Client = c
	if err := e.check(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	return e, nil
}

// check asks the Engine's BuildKit for its workers and its LLB
// capabilities, and refuses one that lacks what the recipes use.
func (e *Engine) check(ctx context.Context) error {
	ws, err := e.Client.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("its BuildKit does not answer: %w (is BuildKit turned off in its daemon.json? \"features\": {\"buildkit\": true} turns it on; Lantern needs Docker Engine %s or later)", err, MinEngine)
	}
	if len(ws) == 0 {
		return errors.New("its BuildKit has no worker")
	}
	// The LLB capabilities come with a build's gateway; this build solves
	// nothing.
	var missing []string
	_, err = e.Client.Build(ctx, bkclient.SolveOpt{}, "lantern", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		caps := gw.BuildOpts().LLBCaps
		for _, id := range Required {
			if caps.Supports(id) != nil {
				missing = append(missing, string(id))
			}
		}
		for _, id := range CapsRequired {
			if caps.Supports(id) != nil {
				e.noCaps = append(e.noCaps, string(id))
			}
		}
		return gateway.NewResult(), nil
	}, nil)
	if err != nil {
		return fmt.Errorf("its BuildKit's capabilities: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: its BuildKit lacks the LLB capabilities %s that Lantern's builds use; Lantern needs Docker Engine %s or later", ErrTooOld, strings.Join(missing, ", "), MinEngine)
	}
	return nil
}

// checkHost refuses an address Connect cannot use, or must not: a tcp://
// one beyond the loopback interface without TLS, where whoever reaches the
// port, or sits on the way, commands the Engine and every build in it.
func checkHost(host, tlsDir string) error {
	u, err := url.Parse(host)
	// url.Parse lowers the scheme's case; the docker client reads it as
	// written, and reaches one it does not know ("UNIX") over TCP.
	if err != nil || u.Scheme == "" || !strings.HasPrefix(host, u.Scheme+"://") {
		return fmt.Errorf("docker host %q: want unix:///PATH or tcp://HOST:PORT", host)
	}
	shown := host // with no password in it
	if u.User != nil {
		shown = u.Redacted()
	}
	switch u.Scheme {
	case "unix", "tcp":
		if u.User != nil {
			return fmt.Errorf("docker host %q: a docker host carries no user or password (the docker client sends none); give unix:///PATH or tcp://HOST:PORT", shown)
		}
	}
	switch u.Scheme {
	case "unix":
		if tlsDir != "" {
			return fmt.Errorf("docker host %q: TLS is for a tcp:// host; a unix socket takes none", shown)
		}
		return nil
	case "tcp":
		if tlsDir != "" {
			return nil
		}
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
		return fmt.Errorf("docker host %q without TLS: whoever reaches that port commands the Engine and every build in it; give the directory of its client certificate (ca.pem, cert.pem, key.pem), or reach the Engine on its unix socket", shown)
	case "ssh":
		return fmt.Errorf("docker host %q: ssh:// is not supported; forward the Engine's socket into a directory only this user can write (ssh -L $HOME/.engine.sock:/var/run/docker.sock HOST; not /tmp, where another user's socket could be there first and build for this worker) and give unix://$HOME/.engine.sock, with the build caps set to 0: they hold only on an Engine on this machine", shown)
	}
	return fmt.Errorf("docker host %q: scheme %q not supported: want unix:///PATH or tcp://HOST:PORT", shown, u.Scheme)
}
