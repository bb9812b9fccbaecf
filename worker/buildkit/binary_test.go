package buildkit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "buildkitd")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, explicit, env string
		want                string // "" for ErrNoBuildkitd
	}{
		{name: "explicit", explicit: exe, want: exe},
		{name: "explicit before env", explicit: exe, env: plain, want: exe},
		{name: "explicit missing", explicit: filepath.Join(dir, "missing")},
		{name: "explicit not executable", explicit: plain},
		{name: "explicit directory", explicit: dir},
		{name: "env", env: exe, want: exe},
		{name: "env missing", env: filepath.Join(dir, "missing")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LANTERN_BUILDKITD", tc.env)
			got, err := findBinary(tc.explicit)
			if tc.want == "" {
				if !errors.Is(err, ErrNoBuildkitd) {
					t.Errorf("findBinary(%q) = %q, %v; want ErrNoBuildkitd", tc.explicit, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("findBinary(%q) = %q, %v; want %q", tc.explicit, got, err, tc.want)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, ok := moduleRoot()
	if !ok {
		t.Fatal("moduleRoot() found no Lantern module above the package's directory")
	}
	if p, err := goModPath(filepath.Join(root, "go.mod")); err != nil || p != modulePath {
		t.Errorf("moduleRoot() = %q, whose go.mod declares %q, %v; want %q", root, p, err, modulePath)
	}
}
