// Package buildkit is the worker's adapter to BuildKit, the sandbox every
// rebuild runs in. It starts and stops a buildkitd of its own (StartDaemon)
// and connects to one (Connect); builds are LLB graphs solved through the
// BuildKit Go client (github.com/moby/buildkit/client and client/llb), never
// by running buildctl.
//
// # What buildkitd needs on the machine
//
// StartDaemon runs buildkitd as a child process with the OCI worker, which
// starts each build step with runc:
//
//   - root: the OCI worker makes namespaces, mounts and cgroups;
//   - runc on the PATH: Debian's package (apt-get install runc);
//   - buildkitd itself, built from the BuildKit module pinned in
//     tools/buildkit/go.mod: 'make buildkitd' writes bin/buildkitd;
//   - a short state directory: its socket path must fit in 107 bytes.
//
// The snapshotter is BuildKit's choice ("auto"): overlayfs where the kernel
// and the file system below allow it (it does on ext4, as on the Debian VMs
// Lantern is tested on, with cgroup v1), else native copies. The daemon
// reads no /etc/buildkit/buildkitd.toml: StartDaemon gives it an empty
// config file in its directory, so that the machine's settings do not change
// what a rebuild sees. Everything the daemon keeps is under its directory,
// but for runc's own state of running steps (/run/runc, runc's default).
//
// # Network and what a step sees
//
// The worker's default network is the host's (--oci-worker-net=host; the
// alternative, CNI, needs plugins this project does not install). A build
// step therefore has no network only when it asks for none, and every step
// Lantern runs does: llb.Network(llb.NetModeNone). The tests prove that such
// a step cannot reach a port on 127.0.0.1 that the same step reaches
// without it.
//
// BuildKit (v0.34) gives every step OTEL_* variables and the trace context
// of its run, TRACEPARENT, which differs from run to run and which a step
// cannot override; the OTEL_* ones it can. A recipe must keep its
// environment out of its outputs. BuildKit would also bind-mount its trace
// collector's socket into every step, as /dev/otel-grpc.sock; StartDaemon
// unlinks the socket once the daemon answers, so that no step gets it.
//
// # Stopping
//
// On SIGTERM buildkitd waits for the builds in flight, and if it dies in
// the middle of one, runc's containers outlive it. Close therefore kills
// the steps still running after two seconds, and StartDaemon, in a Dir
// where a daemon died, first removes what that one left. A process that
// is killed before it can call Close leaves its daemon a SIGTERM (so it
// exits) but may leave a running step behind, until the next StartDaemon
// in the same Dir.
//
// # How tests find buildkitd
//
// The binary is, in this order: Options.Binary; $LANTERN_BUILDKITD;
// buildkitd beside the running executable (bin/lantern finds
// bin/buildkitd); bin/buildkitd at the top of the Lantern module that holds
// the working directory (where 'make buildkitd' puts it, and where 'go
// test' finds it); buildkitd on the PATH. The integration tests skip when
// buildkitd, runc or root is missing, saying what to install, and fail
// instead when $CI is set.
package buildkit
