package rebuilderd_test

import (
	"os"
	"path/filepath"
	"testing"
)

// The sample in the top-level testdata: see its README.
const (
	samplePkg     = "filesystem-2025.10.12-1-any.pkg.tar.zst"
	sampleLink    = "filesystem-2025.10.12-1-any.in-toto.link"
	sampleInvalid = "filesystem-2025.10.12-1-any.INVALID.in-toto.link"
	sampleKey     = "reproducible-archlinux.pub"
	// The keyid of the instance's signature in the sample link.
	sampleKeyID = "1ae6d32cb5bb8a98312106de28e50af7e09a9b294d51df459537908ac1288b8f"
)

func readSample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rebuilderd", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
