package evidence_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/verify/evidence"
)

// FuzzSplit cuts arbitrary files and farm answers into pieces: Split must
// never panic; a whole JSON value is one piece; otherwise each piece is a
// trimmed, non-blank line of the input, at most MaxPiece+1 bytes, its
// origin naming the line.
func FuzzSplit(f *testing.F) {
	e := envelope(f, 1)
	var pretty bytes.Buffer
	json.Indent(&pretty, e, "", "  ")
	for _, s := range [][]byte{e, pretty.Bytes(), []byte(string(e) + "\r\n\r\n" + string(e) + "\n"), []byte("x\n\n  y  \r\n"), []byte("\n"), nil, []byte(`{"a":1}{"b":2}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := evidence.Split("f", b)
		if json.Valid(b) {
			if len(got) != 1 || got[0].Origin != "f" || !bytes.Equal(got[0].Raw, b) {
				t.Fatalf("Split(one JSON value) = %d pieces, want it whole", len(got))
			}
			return
		}
		lines := bytes.Split(b, []byte("\n"))
		seen := map[string]bool{}
		for _, p := range got {
			if len(p.Raw) == 0 || len(p.Raw) > evidence.MaxPiece+1 || !bytes.Equal(p.Raw, bytes.TrimSpace(p.Raw)) {
				t.Fatalf("Split() piece %s: %d bytes, %.40q: want a trimmed, non-blank line, at most %d bytes", p.Origin, len(p.Raw), p.Raw, evidence.MaxPiece+1)
			}
			if seen[p.Origin] || !strings.HasPrefix(p.Origin, "f:") {
				t.Fatalf("Split() origin %q: want f:LINE, once", p.Origin)
			}
			seen[p.Origin] = true
			var n int
			if _, err := fmt.Sscan(p.Origin[2:], &n); err != nil || n < 1 || n > len(lines) || !bytes.HasPrefix(bytes.TrimSpace(lines[n-1]), p.Raw) {
				t.Fatalf("Split() piece %s = %.40q, not line %d of the input", p.Origin, p.Raw, n)
			}
		}
		blank := 0
		for _, l := range lines {
			if len(bytes.TrimSpace(l)) == 0 {
				blank++
			}
		}
		if len(got) != len(lines)-blank {
			t.Fatalf("Split() = %d pieces of %d lines, %d blank", len(got), len(lines), blank)
		}
	})
}
