package main

import (
	"strings"
	"testing"
)

// TestFetchFlags: the settings of where sources are fetched from are in
// each command's help, and a wrong one is a command-line error (exit 2)
// that names it.
func TestFetchFlags(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"worker", "scheduler", "up"} {
		r := runLantern(t, dir, nil, cmd, "--help")
		for _, flag := range []string{"-allow-private-fetch", "-allow-http-fetch", "-allow-fetch-from CIDR"} {
			if !strings.Contains(r.stdout+r.stderr, flag) {
				t.Errorf("lantern %s --help does not show %s", cmd, flag)
			}
		}
		runLantern(t, dir, nil, cmd, "--allow-fetch-from", "10.0.0.1/8").fails(t, cmd+" --allow-fetch-from 10.0.0.1/8", 2, "did you mean 10.0.0.0/8?")
		runLantern(t, dir, nil, cmd, "--allow-fetch-from", "mirror.example.org").fails(t, cmd+" --allow-fetch-from a name", 2, "want an address range")
		runLantern(t, dir, []string{"LANTERN_ALLOW_FETCH_FROM=10.0.5.0/24,bogus"}, cmd).fails(t, cmd+" with a bad $LANTERN_ALLOW_FETCH_FROM", 2, `"bogus"`)
		runLantern(t, dir, []string{"LANTERN_ALLOW_PRIVATE_FETCH=maybe"}, cmd).fails(t, cmd+" with a bad $LANTERN_ALLOW_PRIVATE_FETCH", 2, "LANTERN_ALLOW_PRIVATE_FETCH")
	}
}
