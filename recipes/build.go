package recipes

import (
	"io"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"
)

// Build is one solve a recipe describes, with its inputs checked and its
// LLB made: what BuildKit runs, what it reads of the worker's disk, its
// bounds, and how its result is checked. A recipe calls no BuildKit
// itself; worker/solve runs a Build on either backend (a buildkitd, or
// Docker Engine's BuildKit) the same way.
type Build struct {
	// Name says what is built or sent, for errors ("build NAME: ...").
	Name string
	// Def is the build as LLB.
	Def *llb.Definition
	// Locals are the local sources Def reads, by name (llb.Local).
	Locals map[string]fsutil.FS
	// Time bounds the solve, which is killed then (ErrTimeLimit); zero:
	// only the caller's context does.
	Time time.Duration
	// MaxOutput caps the bytes of files the result may export
	// (ErrOutputs). A Build whose result is exported must set it.
	MaxOutput int64
	// Check checks the exported directory once the solve is done, and
	// says in the build's log what it refuses; nil: no check. Its error is
	// the build's.
	Check func(dir string, log io.Writer) error
}
