package dockerengine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/util/apicaps"
	"github.com/moby/buildkit/util/entitlements"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/dockertest"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/buildkit"
	"github.com/lanternfarm/lantern/worker/dockerengine"
	"github.com/lanternfarm/lantern/worker/solve"
)

// These tests run against a real Docker Engine, Debian's dockerd, which
// internal/dockertest starts once for the test binary.

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.Stop()
	os.Exit(code)
}

func connect(t *testing.T) *dockerengine.Engine {
	t.Helper()
	d := dockertest.Start(t)
	e, err := dockerengine.Connect(t.Context(), d.Host, "")
	if err != nil {
		t.Fatalf("Connect(%s) = %v", d.Host, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestConnect: the client reaches the Engine's BuildKit through the
// Engine's API, and it answers; where it cannot hold a worker's caps,
// HoldsCaps says so and names the Engine that can.
func TestConnect(t *testing.T) {
	d := dockertest.Start(t)
	e := connect(t)
	t.Logf("%s; dockerd --version: %s", e, d.Version)
	if e.Version == "" || e.APIVersion == "" {
		t.Errorf("Engine version %q, API %q, want both", e.Version, e.APIVersion)
	}
	if !strings.Contains(d.Version, strings.TrimSuffix(e.Version, "+dfsg1")) {
		t.Errorf("Engine.Version = %q, but dockerd --version says %q", e.Version, d.Version)
	}
	ws, err := e.Client.ListWorkers(t.Context())
	if err != nil || len(ws) == 0 {
		t.Fatalf("ListWorkers() = %v, %v; want a worker", ws, err)
	}
	// A solve through the Engine's /grpc, its output back through /session.
	out := t.TempDir()
	def, err := llb.Scratch().File(llb.Mkfile("/hello", 0o644, []byte("hi"))).Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Solve(t.Context(), def, client.SolveOpt{Exports: []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}}}, nil); err != nil {
		t.Fatalf("Solve() = %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(out, "hello")); err != nil || string(got) != "hi" {
		t.Errorf("exported /hello = %q, %v; want %q", got, err, "hi")
	}
	if err := e.HoldsCaps(); err != nil {
		if !errors.Is(err, dockerengine.ErrNoCaps) || !strings.Contains(err.Error(), "Docker Engine "+dockerengine.MinEngineCaps) {
			t.Errorf("HoldsCaps() = %v, want ErrNoCaps naming Docker Engine %s", err, dockerengine.MinEngineCaps)
		}
		t.Logf("HoldsCaps() = %v", err)
	}
}

// TestConnectRefuses: what is not a Docker Engine that Lantern can build
// on is refused, saying why.
func TestConnectRefuses(t *testing.T) {
	dir, err := os.MkdirTemp("", "dkt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A fake Engine, speaking only the API before 1.40 (Engine 18.09).
	old := serveUnix(t, filepath.Join(dir, "old.sock"), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.39")
		w.Header().Set("Ostype", "linux")
		fmt.Fprint(w, "OK")
	})
	// An Engine's API without BuildKit behind /grpc (as before 18.09).
	noBuildKit := serveUnix(t, filepath.Join(dir, "nobk.sock"), func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("Api-Version", "1.41")
			w.Header().Set("Ostype", "linux")
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/version"):
			fmt.Fprint(w, `{"Version":"20.10.0","ApiVersion":"1.41","Os":"linux"}`)
		default:
			http.NotFound(w, r)
		}
	})
	// A port on 127.0.0.1 that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, host, tls string
		cancel          bool // refused before any dial
		want            []string
		is              error
	}{
		{name: "API too old", host: old, want: []string{"1.39", "Docker Engine " + dockerengine.MinEngine}, is: dockerengine.ErrTooOld},
		{name: "no BuildKit", host: noBuildKit, want: []string{"20.10.0", "BuildKit"}},
		{name: "nothing there", host: "unix://" + filepath.Join(dir, "none.sock"), want: []string{"does not answer"}},
		{name: "tcp on loopback, nothing there", host: "tcp://" + closed, want: []string{"does not answer"}},
		{name: "tcp beyond loopback without TLS", host: "tcp://198.51.100.7:2375", cancel: true, want: []string{"without TLS", "client certificate"}},
		{name: "tcp by name without TLS", host: "tcp://docker.example.org:2375", cancel: true, want: []string{"without TLS"}},
		{name: "TLS files missing", host: "tcp://198.51.100.7:2376", tls: filepath.Join(dir, "no-certs"), cancel: true, want: []string{"TLS", "no-certs"}},
		{name: "unix with TLS", host: "unix:///var/run/docker.sock", tls: dir, cancel: true, want: []string{"a unix socket takes none"}},
		{name: "ssh", host: "ssh://root@example.org", cancel: true, want: []string{"ssh -L", "only this user can write", "caps set to 0"}},
		{name: "http", host: "http://127.0.0.1:2375", cancel: true, want: []string{"unix:///PATH or tcp://HOST:PORT"}},
		{name: "no scheme", host: "/var/run/docker.sock", cancel: true, want: []string{"unix:///PATH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.cancel {
				c, cancel := context.WithCancel(ctx)
				cancel() // a bug that dialled would send nothing
				ctx = c
			}
			e, err := dockerengine.Connect(ctx, tc.host, tc.tls)
			if err == nil {
				e.Close()
				t.Fatalf("Connect(%q) = nil error, want one", tc.host)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Connect(%q) = %v, want it to say %q", tc.host, err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Connect(%q) = %v, want %v", tc.host, err, tc.is)
			}
		})
	}
}

// TestConnectSchemeAsDocker: the docker client reads a host's scheme as
// written, and one it does not know, "UNIX" say, it reaches over TCP;
// Connect must not read it as "unix" and let a host beyond loopback go
// without TLS. A listener on loopback stands in for that host: nothing may
// reach it.
func TestConnectSchemeAsDocker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case dialled <- struct{}{}:
			default:
			}
			c.Close()
		}
	}()
	for _, host := range []string{"UNIX://" + ln.Addr().String(), "Unix://" + ln.Addr().String(), "TCP://" + ln.Addr().String()} {
		e, err := dockerengine.Connect(t.Context(), host, "")
		if err == nil {
			e.Close()
			t.Fatalf("Connect(%q) = nil error, want one", host)
		}
		if !strings.Contains(err.Error(), "unix:///PATH or tcp://HOST:PORT") {
			t.Errorf("Connect(%q) = %v, want it to name the schemes it takes", host, err)
		}
	}
	select {
	case <-dialled:
		t.Errorf("a host whose scheme is not unix or tcp, as written, was dialled over TCP")
	default:
	}
}

// TestConnectHidesPassword: a password in --docker-host (the docker client
// sends none; a person may still write one) is in no error.
func TestConnectHidesPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, host := range []string{
		"tcp://lantern:s3cr3t@" + closed,
		"tcp://lantern:s3cr3t@198.51.100.7:2375",
		"ssh://lantern:s3cr3t@198.51.100.7",
		"http://lantern:s3cr3t@127.0.0.1:2375",
	} {
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // a bug that dialled would send nothing
		e, err := dockerengine.Connect(ctx, host, "")
		if err == nil {
			e.Close()
			t.Fatalf("Connect(%q) = nil error, want one", host)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Connect(%q) = %v: the password is in the error", host, err)
		}
	}
}

func serveUnix(t *testing.T, sock string, h http.HandlerFunc) string {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// TestRequired: every LLB capability the recipes' builds ask for is one
// Connect checks, so that an Engine that lacks one is refused before it
// ignores part of a build.
func TestRequired(t *testing.T) {
	known := append(slices.Clone(dockerengine.Required), dockerengine.CapsRequired...)
	check := func(name string, st llb.State) {
		def, err := st.Marshal(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, m := range def.Metadata {
			for id := range m.Caps {
				if !slices.Contains(known, id) {
					t.Errorf("%s asks for %s, which Connect does not check", name, id)
				}
			}
		}
	}
	limits := recipes.Limits{Tmp: 1 << 30, Cgroup: "lantern/test"}

	goRecipe, err := recipes.Load("go")
	if err != nil {
		t.Fatal(err)
	}
	goIn := &recipes.GoInputs{
		Spec:   recipes.GoSpec{Module: "example.org/m", Version: "v1.0.0", Package: "example.org/m/cmd/x", GoVersion: "1.24.4", GOOS: "linux", GOARCH: "amd64"},
		Recipe: goRecipe.Ref(), HostArch: runtime.GOARCH, Limits: limits,
		Toolchain: recipes.GoToolchain{Module: "golang.org/toolchain", Version: "v0.0.1-go1.24.4.linux-amd64"},
	}
	st, err := recipes.GoLLB(goIn, goRecipe)
	if err != nil {
		t.Fatalf("GoLLB: %v", err)
	}
	check("GoLLB", st)

	generic, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	genIn := &recipes.GenericInputs{
		Recipe: generic.Ref(), Source: lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf([]byte("x"))},
		Spec:     lantern.BuildSpec{Image: "127.0.0.1:5000/b@sha256:" + strings.Repeat("a", 64), Commands: []string{"true"}, Outputs: map[string]string{"o": "o"}},
		HostArch: runtime.GOARCH, Limits: limits,
	}
	st, err = recipes.GenericLLB(genIn, generic)
	if err != nil {
		t.Fatalf("GenericLLB: %v", err)
	}
	check("GenericLLB", st)
	for _, id := range dockerengine.CapsRequired {
		if !slices.Contains([]apicaps.CapID{"exec.meta.cgroup.parent", "exec.mount.tmpfs.size"}, id) {
			t.Errorf("CapsRequired has %s, which is not what caps need", id)
		}
	}
}

// TestGenericHasNoNetwork: a generic build on Docker Engine — the builder
// image pulled by digest from a registry on 127.0.0.1 by the Engine
// itself, the recipe's LLB asking for no network — cannot reach listeners
// on the host's 127.0.0.1 nor on its other addresses; none of them sees a
// connection. The control: the same probe, in the same image on the same
// Engine, with the host's network, reaches 127.0.0.1.
func TestGenericHasNoNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds on Docker Engine")
	}
	e := connect(t)
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)

	addrs := []string{"127.0.0.1"}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaddrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.IsGlobalUnicast() && ip.IP.To4() != nil {
			addrs = append(addrs, ip.IP.String())
		}
	}
	t.Logf("listening on %v", addrs)
	var accepted atomic.Int32
	var targets []string
	for _, a := range addrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(a, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		targets = append(targets, host+" "+port)
	}
	// busybox nc exits 0 once connected.
	probe := `for t in ` + shellWords(targets) + `; do if nc -w 5 $t </dev/null; then echo "$t connected"; else echo "$t unreachable"; fi; done`

	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	tarball := ocitest.TarGz(t, "probe-1.0", map[string]string{"README": "probe\n"})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write(tarball) }))
	t.Cleanup(files.Close)
	src := lantern.Source{Name: "probe", Version: "1.0", Digest: lantern.DigestOf(tarball)}
	spec := &lantern.BuildSpec{Image: image, Commands: []string{probe + ` > "$OUT/result.txt"`}, Outputs: map[string]string{"result": "result.txt"}}
	dir := t.TempDir()
	in, err := recipes.PrepareGeneric(t.Context(), r, src, files.URL+"/probe-1.0.tar.gz", spec, filepath.Join(dir, "inputs"),
		recipes.GenericOptions{HTTP: files.Client()})
	if err != nil {
		t.Fatalf("PrepareGeneric: %v", err)
	}
	if e.HoldsCaps() != nil {
		in.Limits.Tmp = 0 // as worker.GenericBuilder.UnsizedScratch does
	}
	var log strings.Builder
	out := filepath.Join(dir, "out")
	if err := buildGeneric(t.Context(), e.Client, in, r, out, &log); err != nil {
		t.Fatalf("BuildGeneric on %s: %v\n%s", e, err, log.String())
	}
	result, err := os.ReadFile(filepath.Join(out, "result.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("with no network:\n%s", result)
	for _, tg := range targets {
		if !strings.Contains(string(result), tg+" unreachable\n") {
			t.Errorf("the build without network: %q, want %q unreachable", result, tg)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listeners accepted %d connections from the build without network, want 0", n)
	}

	// A step that asks for the host's network without the entitlement —
	// which no solve of Lantern's grants — is refused, though the Engine
	// allows the entitlement to a client that asks for it.
	hostNet := llb.Image(image).Run(llb.Args([]string{"/bin/sh", "-c", `nc -w 5 ` + targets[0] + ` </dev/null && echo connected > /out/result || echo unreachable > /out/result`}),
		llb.Network(llb.NetModeHost), llb.IgnoreCache).AddMount("/out", llb.Scratch())
	def, err := hostNet.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Solve(t.Context(), def, client.SolveOpt{Exports: []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: t.TempDir()}}}, nil); err == nil || !strings.Contains(err.Error(), "network.host") {
		t.Errorf("a step with the host's network, solved without the entitlement: %v, want refused naming network.host", err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listeners accepted %d connections from a step refused the host's network", n)
	}

	// The control, as a plain LLB step with the host's network and its
	// entitlement.
	ctl := t.TempDir()
	if _, err := e.Client.Solve(t.Context(), def, client.SolveOpt{
		AllowedEntitlements: []string{string(entitlements.EntitlementNetworkHost)},
		Exports:             []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: ctl}},
	}, nil); err != nil {
		t.Fatalf("control solve with the host's network: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(ctl, "result")); string(got) != "connected\n" || accepted.Load() == 0 {
		t.Errorf("control with the host's network: %q, %d connections; want connected (is the probe broken?)", got, accepted.Load())
	}
}

// shellWords quotes each of ws as one word of sh.
func shellWords(ws []string) string {
	var q []string
	for _, w := range ws {
		q = append(q, "'"+w+"'")
	}
	return strings.Join(q, " ")
}

// TestConnectTLS: an Engine on tcp:// is reached over TLS with the
// worker's client certificate, its own certificate verified: a build's
// session runs through it (a local source sent, the output sent back).
// With a CA that did not sign the Engine's certificate, or without TLS,
// Connect fails.
func TestConnectTLS(t *testing.T) {
	d := dockertest.Start(t)
	e, err := dockerengine.Connect(t.Context(), d.TLSHost, d.TLSDir)
	if err != nil {
		t.Fatalf("Connect(%s, %s) = %v", d.TLSHost, d.TLSDir, err)
	}
	defer e.Close()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("over TLS"), 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := llb.Scratch().File(llb.Copy(llb.Local("src"), "/hello", "/hello")).Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsutil.NewFS(src)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := e.Client.Solve(t.Context(), def, client.SolveOpt{
		LocalMounts: map[string]fsutil.FS{"src": fs},
		Exports:     []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}},
	}, nil); err != nil {
		t.Fatalf("Solve() over TLS = %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(out, "hello")); err != nil || string(got) != "over TLS" {
		t.Errorf("exported /hello = %q, %v; want %q", got, err, "over TLS")
	}

	if e, err := dockerengine.Connect(t.Context(), d.TLSHost, d.WrongCADir); err == nil {
		e.Close()
		t.Errorf("Connect(%s) with a CA that did not sign the Engine's certificate = nil error, want one", d.TLSHost)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Connect(%s) with the wrong CA = %v, want it to name the certificate", d.TLSHost, err)
	} else {
		t.Logf("with the wrong CA: %v", err)
	}
	if e, err := dockerengine.Connect(t.Context(), d.TLSHost, ""); err == nil {
		e.Close()
		t.Errorf("Connect(%s) without TLS to an Engine that wants it = nil error, want one", d.TLSHost)
	}
}

// TestGenericSameSandbox: the same generic build on Docker Engine and on
// a buildkitd sees the same sandbox — environment, user, umask, working
// directory, devices, root file system, limits, network interfaces — and
// gives the same bytes. Only the hostname, new for each build, differs.
func TestGenericSameSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds on Docker Engine and in buildkitd")
	}
	e := connect(t)
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	_, bk := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})

	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	tarball := ocitest.TarGz(t, "sandbox-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write(tarball) }))
	t.Cleanup(files.Close)
	src := lantern.Source{Name: "sandbox", Version: "1.0", Digest: lantern.DigestOf(tarball)}
	spec := &lantern.BuildSpec{Image: image, Commands: []string{
		`{ env | sort; echo "id=$(id)"; echo "umask=$(umask)"; echo "pwd=$(pwd)"; echo "hostname=$(hostname | cut -c1-8)"; } > "$OUT/env.txt"`,
		`{ ls -la /dev /tmp /src | awk '{print $1, $3, $4, $NF}'; ls /; } > "$OUT/fs.txt"`,
		`{ ulimit -a; cat /proc/net/dev | cut -d: -f1; cat /proc/self/status | grep -E '^(Cap|NoNewPrivs|Seccomp)'; } > "$OUT/limits.txt"`,
		`tr a-z A-Z < greeting.txt > "$OUT/shout.txt"`,
	}, Outputs: map[string]string{"env": "env.txt", "fs": "fs.txt", "limits": "limits.txt", "shout": "shout.txt"}}

	build := func(name string, c *client.Client, unsized bool) map[string]string {
		dir := t.TempDir()
		in, err := recipes.PrepareGeneric(t.Context(), r, src, files.URL+"/sandbox-1.0.tar.gz", spec, filepath.Join(dir, "inputs"),
			recipes.GenericOptions{HTTP: files.Client()})
		if err != nil {
			t.Fatalf("%s: PrepareGeneric: %v", name, err)
		}
		if unsized {
			in.Limits.Tmp = 0 // as worker.GenericBuilder.UnsizedScratch does
		}
		var log strings.Builder
		out := filepath.Join(dir, "out")
		if err := buildGeneric(t.Context(), c, in, r, out, &log); err != nil {
			t.Fatalf("%s: BuildGeneric: %v\n%s", name, err, log.String())
		}
		got := map[string]string{}
		for label, p := range spec.Outputs {
			b, err := os.ReadFile(filepath.Join(out, p))
			if err != nil {
				t.Fatal(err)
			}
			got[label] = string(b)
		}
		return got
	}
	onEngine := build(e.String(), e.Client, e.HoldsCaps() != nil)
	onBuildkitd := build("buildkitd", bk, false)
	// The one difference known: a step of BuildKit v0.8 (Engine 20.10) has
	// no supplementary groups, a buildkitd's has group 0 (see the package
	// doc). Any other difference fails the test.
	if e.HoldsCaps() != nil {
		if g := " groups=0\n"; strings.Contains(onBuildkitd["env"], "gid=0"+g) && strings.Contains(onEngine["env"], "gid=0\n") {
			onBuildkitd["env"] = strings.Replace(onBuildkitd["env"], "gid=0"+g, "gid=0\n", 1)
			t.Logf("known: on %s the step has no supplementary groups; on buildkitd, group 0", e)
		}
	}
	for _, label := range slices.Sorted(maps.Keys(spec.Outputs)) {
		if onEngine[label] != onBuildkitd[label] {
			t.Errorf("%s differs:\non Docker Engine:\n%s\non buildkitd:\n%s", label, onEngine[label], onBuildkitd[label])
		}
	}
	t.Logf("the sandbox on both:\n%s%s%s", onEngine["env"], onEngine["fs"], onEngine["limits"])
}

// buildGeneric describes a generic build and solves it on c, as the
// worker's GenericBuilder does.
func buildGeneric(ctx context.Context, c solve.Client, in *recipes.GenericInputs, r *recipes.Recipe, out string, log io.Writer) error {
	b, err := recipes.GenericBuild(ctx, in, r)
	if err != nil {
		return err
	}
	return solve.Run(ctx, c, b, out, log)
}
