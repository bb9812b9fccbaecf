package buildkit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePath is Lantern's module, whose bin/ holds what 'make buildkitd' built.
const modulePath = "github.com/lanternfarm/lantern"

// findBinary returns the buildkitd to run, looked for in the order the
// package doc gives.
func findBinary(explicit string) (string, error) {
	const fix = "'make buildkitd' builds bin/buildkitd"
	if explicit != "" {
		if err := isExecutable(explicit); err != nil {
			return "", fmt.Errorf("%w: %v; %s", ErrNoBuildkitd, err, fix)
		}
		return explicit, nil
	}
	if p := os.Getenv("LANTERN_BUILDKITD"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("%w: $LANTERN_BUILDKITD: %v; %s", ErrNoBuildkitd, err, fix)
		}
		return p, nil
	}
	looked := []string{"beside this executable"}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "buildkitd")
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	if root, ok := moduleRoot(); ok {
		p := filepath.Join(root, "bin", "buildkitd")
		if isExecutable(p) == nil {
			return p, nil
		}
		looked = append(looked, "at "+p)
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p, nil
	}
	looked = append(looked, "on the PATH")
	return "", fmt.Errorf("%w %s, and $LANTERN_BUILDKITD is unset; %s",
		ErrNoBuildkitd, strings.Join(looked, ", "), fix)
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// moduleRoot returns the top of the Lantern module that holds the working
// directory, if one does: where 'go test' runs a package's tests.
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if p, err := goModPath(filepath.Join(dir, "go.mod")); err == nil && p == modulePath {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// goModPath returns the module path a go.mod file declares.
func goModPath(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no module line")
}
