package evidence_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

var builder = func() *keys.Private {
	k, err := keys.Generate()
	if err != nil {
		panic(err)
	}
	return k
}()

var artefact = lantern.DigestOf([]byte("the tool"))

// envelope signs, as builder, a rebuild to artefact; n makes each one
// different. It returns the envelope's JSON, compact.
func envelope(tb testing.TB, n int) []byte {
	tb.Helper()
	fin := time.Date(2026, 11, 25, 12, n, 0, 0, time.UTC)
	env, err := attest.Sign(&lantern.Rebuild{
		Source:   lantern.Source{Name: "example.org/tool", Version: "v1.0.0", Digest: lantern.DigestOf([]byte("source"))},
		Label:    "tool_linux_amd64",
		Output:   artefact,
		Recipe:   lantern.Recipe{BuildType: "https://lantern.example/recipes/go/v1"},
		Builder:  builder.ID(),
		Finished: fin,
	}, builder)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decide weighs pieces with builder trusted, threshold 1.
func decide(tb testing.TB, pieces []verify.Piece) *verify.Decision {
	tb.Helper()
	k, err := verify.ParseKey(builder.Public().MarshalPEM(), "builder.pub")
	if err != nil {
		tb.Fatal(err)
	}
	return verify.Decide(&verify.Policy{Builders: []verify.Key{k}, Threshold: 1}, artefact, pieces, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
}

func origins(pieces []verify.Piece) []string {
	var out []string
	for _, p := range pieces {
		out = append(out, p.Origin)
	}
	return out
}

func TestSplit(t *testing.T) {
	e1, e2 := envelope(t, 1), envelope(t, 2)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, e1, "", "  "); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("x"), evidence.MaxPiece+10)
	for _, tc := range []struct {
		name    string
		in      []byte
		origins []string
		raws    [][]byte
		reasons []verify.Reason
	}{
		{name: "one envelope, pretty-printed", in: append(append([]byte("\n"), pretty.Bytes()...), "\r\n\n"...),
			origins: []string{"f"}, raws: [][]byte{append(append([]byte("\n"), pretty.Bytes()...), "\r\n\n"...)}, reasons: []verify.Reason{verify.ReasonAgrees}},
		{name: "one envelope, one line", in: append(e1, '\n'),
			origins: []string{"f"}, raws: [][]byte{append(e1, '\n')}, reasons: []verify.Reason{verify.ReasonAgrees}},
		{name: "JSON Lines, blank lines and CRLF", in: []byte("\r\n" + string(e1) + "\r\n\r\n   \t\n" + string(e2) + "\r\n\n"),
			origins: []string{"f:2", "f:5"}, raws: [][]byte{e1, e2}, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonCounted}},
		{name: "JSON Lines, no newline at the end", in: []byte(string(e1) + "\n" + string(e2)),
			origins: []string{"f:1", "f:2"}, raws: [][]byte{e1, e2}, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonCounted}},
		{name: "a line that is not JSON", in: []byte("garbage\n" + string(e1) + "\n"),
			origins: []string{"f:1", "f:2"}, raws: [][]byte{[]byte("garbage"), e1}, reasons: []verify.Reason{verify.ReasonUnreadable, verify.ReasonAgrees}},
		{name: "an oversized line", in: []byte(string(e1) + "\n" + string(huge) + "\n" + string(e2) + "\n"),
			origins: []string{"f:1", "f:2", "f:3"}, raws: [][]byte{e1, huge[:evidence.MaxPiece+1], e2}, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonUnreadable, verify.ReasonCounted}},
		{name: "nothing", in: nil},
		{name: "blank", in: []byte("\n\r\n  \n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evidence.Split("f", tc.in)
			if diff := cmp.Diff(tc.origins, origins(got)); diff != "" {
				t.Fatalf("Split() origins (-want +got):\n%s", diff)
			}
			for i, p := range got {
				if !bytes.Equal(p.Raw, tc.raws[i]) {
					t.Errorf("Split()[%d].Raw = %.80q (%d bytes), want %.80q (%d bytes)", i, p.Raw, len(p.Raw), tc.raws[i], len(tc.raws[i]))
				}
			}
			d := decide(t, got)
			var rs []verify.Reason
			for _, it := range d.Evidence {
				rs = append(rs, it.Reason)
			}
			if diff := cmp.Diff(tc.reasons, rs); diff != "" {
				t.Errorf("Decide(Split()) reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	e1, e2, e3 := envelope(t, 1), envelope(t, 2), envelope(t, 3)
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("farm/b.jsonl", []byte(string(e1)+"\n"+string(e2)+"\n"))
	single := write("farm/a/one.json", e3)
	write("farm/empty.jsonl", nil)
	if err := os.Symlink(single, filepath.Join(dir, "farm", "link.json")); err != nil {
		t.Fatal(err)
	}
	// A file larger than any evidence file may be, sparse so that it costs
	// nothing: listed, unread.
	big, err := os.Create(filepath.Join(dir, "farm", "z-big.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(evidence.MaxFile + 1); err != nil {
		t.Fatal(err)
	}
	big.Close()

	got, err := evidence.Files([]string{filepath.Join(dir, "farm"), bundle})
	if err != nil {
		t.Fatalf("Files() = %v", err)
	}
	want := []string{single, bundle + ":1", bundle + ":2", big.Name() + " (too much evidence: 268435457 bytes, more than an evidence file may hold (268435456))", bundle + ":1", bundle + ":2"}
	if diff := cmp.Diff(want, origins(got)); diff != "" {
		t.Fatalf("Files() origins (-want +got):\n%s", diff)
	}
	if len(got[3].Raw) != 0 {
		t.Errorf("Files(): the unread file's piece has %d bytes", len(got[3].Raw))
	}
	d := decide(t, got)
	if d.Result != verify.Verified || d.Evidence[3].Reason != verify.ReasonUnreadable {
		t.Errorf("Decide(Files()) = %s, the unread file %s; want verified, unreadable", d.Result, d.Evidence[3].Reason)
	}

	// More pieces than all evidence together may have, in one file or
	// across files, is an error before they are all made.
	write("many/a.jsonl", bytes.Repeat([]byte("{}\n"), evidence.MaxPieces/2+1))
	write("many/b.jsonl", bytes.Repeat([]byte("{}\n"), evidence.MaxPieces/2))
	for _, paths := range [][]string{{filepath.Join(dir, "many")}, {filepath.Join(dir, "many", "a.jsonl"), filepath.Join(dir, "many", "a.jsonl")}} {
		if got, err := evidence.Files(paths); !errors.Is(err, evidence.ErrTooMuch) || len(got) != 0 {
			t.Errorf("Files(%d pieces and more) = %d pieces, %v; want %v", evidence.MaxPieces, len(got), err, evidence.ErrTooMuch)
		}
	}

	missing := filepath.Join(dir, "missing")
	if _, err := evidence.Files([]string{single, missing}); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Files(a missing path) = %v, want an error that names it", err)
	}
	if err := os.Symlink(missing, filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Files([]string{filepath.Join(dir, "dangling")}); err == nil {
		t.Error("Files(a dangling symlink) = nil error")
	}
	if got, err := evidence.Files(nil); err != nil || len(got) != 0 {
		t.Errorf("Files(nil) = %d pieces, %v; want none", len(got), err)
	}
}

func ExampleSplit() {
	for _, p := range evidence.Split("bundle.jsonl", []byte("{\"a\":1}\r\n\r\n{\"b\":2}\n")) {
		fmt.Printf("%s %s\n", p.Origin, p.Raw)
	}
	// Output:
	// bundle.jsonl:1 {"a":1}
	// bundle.jsonl:3 {"b":2}
}
