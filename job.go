package lantern

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Job is one rebuild to do: a source with a recipe. Every builder does every
// job once; the worker processes of one builder share its jobs.
type Job struct {
	ID     string `json:"id"`
	Source Source `json:"source"`
	Recipe string `json:"recipe"`
	// Fetch is where the source archive can be downloaded.
	Fetch string `json:"fetch,omitempty"`
	// Published are the artefacts the source claim says the project
	// published, label → digest; rebuilds are compared with them.
	Published map[string]Digest `json:"published,omitempty"`
	// Build is the source claim's build spec, for the generic recipe.
	Build *BuildSpec `json:"build,omitempty"`
	// Claim is the digest of the source claim's envelope that made the job.
	Claim   Digest    `json:"claim"`
	Created time.Time `json:"created"`
}

// JobID names the job of a source, a recipe and, for the generic recipe, a
// build spec (nil for the others). It is derived from them, so that the same
// claim posted twice, or two claims of the same source, make one job; two
// claims that build a source two ways make two.
func JobID(source Digest, recipe string, build *BuildSpec) string {
	h := sha256.New()
	h.Write([]byte(source.String()))
	h.Write([]byte{0})
	h.Write([]byte(recipe))
	if build != nil {
		h.Write([]byte{0})
		h.Write([]byte(build.Digest().String()))
	}
	return "j" + hex.EncodeToString(h.Sum(nil)[:16])
}
