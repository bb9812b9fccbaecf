// Package recipes holds Lantern's recipes, the ways it rebuilds each kind of
// source, and the code that follows them.
//
// # Recipe files
//
// A recipe is a versioned file, NAME/vN.json, embedded in this package.
// Its SHA-256 is the recipe's digest, which goes into every attestation made
// with it, beside its build type, BuildTypeBase + NAME/vN (as
// lantern.Recipe). A released file never changes, so that an old
// attestation keeps its meaning; a change is a new file, NAME/vN+1.json, and
// the test that pins the digests of the released ones says so. Load returns
// a recipe's latest version, LoadVersion a given one, ByDigest the one an
// attestation names.
//
// # Builds
//
// A recipe describes its builds and runs none: GoBuild, GenericBuild and
// ToolchainSend check what goes in and return a Build — the LLB, the local
// sources it reads, its time limit, its output cap and a check of what it
// exported. worker/solve runs a Build on a BuildKit client, whether of a
// buildkitd or of Docker Engine's BuildKit, so that both backends build
// the same definitions the same way.
//
// # The go recipe
//
// It rebuilds a main package of a Go module version the way its users
// install it, and the way anyone can check a result:
//
//	GOTOOLCHAIN=go1.24.4 GOFLAGS=-trimpath CGO_ENABLED=0 go install golang.org/x/tools/cmd/stringer@v0.30.0
//
// It has two halves. Outside the sandbox, PrepareGo fetches and checks the
// inputs: the go command downloads the module and the toolchain module
// (golang.org/toolchain@v0.0.1-go<version>.linux-<arch>) from GOPROXY and
// checks them against the Go checksum database; the toolchain's tree gets
// back the execute bits that module zips cannot keep (and its go.mod
// files), as the go command's own toolchain switch does; the toolchain then
// resolves the build itself (go install -n, which downloads and checks
// every module it needs), and PrepareGo lays out exactly the modules it
// read as a file GOPROXY. Everything is recorded by SHA-256 and by Go's h1:
// hash (GoInputs), and a claimed source digest that differs is refused.
//
// Inside the sandbox, GoLLB is the build as BuildKit LLB: an empty root, no
// network, the toolchain and the file GOPROXY mounted read-only, a tmpfs for
// the caches, and go install -trimpath PKG@VERSION in the recipe's fixed
// environment (CGO_ENABLED=0, GOTOOLCHAIN=local, GOSUMDB=off as the modules
// were checked outside, GOPROXY=file:///goproxy, GOOS and GOARCH as
// declared, TZ=UTC, LC_ALL=C, SOURCE_DATE_EPOCH=0, which Go ignores).
// GoBuild checks the inputs again with VerifyGo and returns the build
// (a Build), whose solve exports the output directory; the command is at
// GoInputs.BinaryPath there. A build
// of the same inputs is bit for bit the same, on every builder and on
// anyone's machine.
//
// Each build step has a hostname of its own, lantern-<random>, and ignores
// BuildKit's cache (both recipes): no builder's rebuild is ever another's
// result, even when two share a daemon.
//
// What the recipe does not fix: the umask of the build step (BuildKit's,
// 0022), which only changes file modes, never the bytes that are hashed;
// and BuildKit's trace variables (OTEL_*, TRACEPARENT), which a Go build
// does not embed.
//
// # The generic recipe
//
// It builds a source tarball the way its source claim's build spec
// (lantern.BuildSpec, the shape of Reproducible Central's buildspec files)
// says: a builder image by digest, shell commands, the output files by
// label. Outside the sandbox, PrepareGeneric downloads the tarball from the
// claim's fetch URL, checks it against the claimed sha256 — a mismatch is a
// *DigestError and nothing is unpacked — and unpacks it through an os.Root,
// so that no entry lands outside its directory (a single top-level
// directory is stripped). Inside, GenericLLB runs one step on the image,
// pulled by digest by BuildKit, with a read-only root file system, no
// network, the source mounted read-only at /src, a tmpfs of Limits.Tmp bytes
// at /tmp and /out for the outputs: /bin/sh -e runs the recipe's prelude
// (which drops BuildKit's trace variables, sets the umask to 022 and copies
// the source to /tmp/build) and then the spec's commands, in the recipe's
// environment (SOURCE_DATE_EPOCH from the spec's sourceDate, TZ=UTC,
// LC_ALL=C, HOME, TMPDIR, SRC, OUT, PATH) plus the spec's own variables.
// GenericBuild's solve kills the step at Limits.Time, exports /out, and its
// check refuses outputs that are missing, undeclared or past
// Limits.Output. Limits come
// from the recipe file, and a worker may lower or raise them.
//
// Errors that callers branch on: a *DigestError (errors.Is
// lantern.ErrDigestMismatch) for an input that is not what was claimed or
// recorded, ErrStepFailed for a build that ran and failed, ErrTimeLimit for
// one killed at its time limit, ErrOutputs for outputs the spec or the
// limits refuse, ErrSourceTooLarge for a source past the source limit,
// ErrNoRecipe for a recipe Lantern does not have. Anything else is the
// machine's fault.
package recipes
