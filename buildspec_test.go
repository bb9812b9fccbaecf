package lantern_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

func validSpec() *lantern.BuildSpec {
	return &lantern.BuildSpec{
		Image:    "127.0.0.1:5000/lantern/busybox@sha256:" + strings.Repeat("ab", 32),
		Commands: []string{"make", "cp hello \"$OUT/hello\""},
		Outputs:  map[string]string{"hello": "hello", "doc": "share/doc/hello.txt"},
		Env:      map[string]string{"CFLAGS": "-O2"},
	}
}

func TestBuildSpecValidate(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*lantern.BuildSpec)
		want   string
	}{
		{"image by tag", func(s *lantern.BuildSpec) { s.Image = "debian:bookworm" }, "want an image by digest"},
		{"short digest", func(s *lantern.BuildSpec) { s.Image = "debian@sha256:abcd" }, "want an image by digest"},
		{"no commands", func(s *lantern.BuildSpec) { s.Commands = nil }, "commands: missing"},
		{"blank command", func(s *lantern.BuildSpec) { s.Commands = []string{"make", "  "} }, "commands[1]: empty"},
		{"no outputs", func(s *lantern.BuildSpec) { s.Outputs = nil }, "outputs: missing"},
		{"absolute output", func(s *lantern.BuildSpec) { s.Outputs = map[string]string{"x": "/etc/passwd"} }, "want a clean path relative"},
		{"escaping output", func(s *lantern.BuildSpec) { s.Outputs = map[string]string{"x": "../x"} }, "want a clean path relative"},
		{"unclean output", func(s *lantern.BuildSpec) { s.Outputs = map[string]string{"x": "a//b"} }, "want a clean path relative"},
		{"label with space", func(s *lantern.BuildSpec) { s.Outputs = map[string]string{"a b": "x"} }, "outputs label"},
		{"env name", func(s *lantern.BuildSpec) { s.Env = map[string]string{"A-B": "1"} }, `env: name "A-B"`},
		{"source date before 1970", func(s *lantern.BuildSpec) { s.SourceDate = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "want 1970 or later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.change(s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestSourceClaimNeedsSpecForGeneric(t *testing.T) {
	c := lantern.SourceClaim{
		Source: lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf([]byte("hello.tar.gz"))},
		Fetch:  "http://127.0.0.1:1/hello.tar.gz",
		Recipe: lantern.RecipeGeneric,
		Time:   time.Now(),
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "build: missing") {
		t.Fatalf("generic claim without a spec: %v, want build: missing", err)
	}
	c.Build = validSpec()
	if err := c.Validate(); err != nil {
		t.Fatalf("generic claim with a spec: %v", err)
	}
	c.Fetch = ""
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "fetch: missing") {
		t.Fatalf("generic claim without fetch: %v, want fetch: missing", err)
	}
	c.Fetch, c.Recipe = "http://127.0.0.1:1/hello.tar.gz", "go"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "only claims with recipe") {
		t.Fatalf("go claim with a spec: %v, want an error", err)
	}
}

func TestJobIDNamesTheSpec(t *testing.T) {
	src := lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf([]byte("hello.tar.gz"))}
	a, b := validSpec(), validSpec()
	b.Commands = append(b.Commands, "true")
	same := validSpec()
	same.SourceDate = time.Unix(0, 0).In(time.FixedZone("X", 3600))
	a.SourceDate = time.Unix(0, 0).UTC()
	if lantern.JobID(src, "generic", a, nil, lantern.Digest{}) == lantern.JobID(src, "generic", b, nil, lantern.Digest{}) {
		t.Error("two specs make one job id")
	}
	if lantern.JobID(src, "generic", a, nil, lantern.Digest{}) != lantern.JobID(src, "generic", same, nil, lantern.Digest{}) {
		t.Error("one source date in two zones makes two job ids")
	}
	if lantern.JobID(src, "generic", nil, nil, lantern.Digest{}) == lantern.JobID(src, "generic", a, nil, lantern.Digest{}) {
		t.Error("a spec does not change the job id")
	}
}
