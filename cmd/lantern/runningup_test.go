package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunningUpElsewhere: a 'lantern up' with a data dir of its own (make
// run's .lantern-demo) names it in the default data dir while it runs, and
// rebuild without --data takes it from there only when it is a running
// up's; what is planted or left over there is not taken.
func TestRunningUpElsewhere(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	def := defaultDataDir()
	if def != filepath.Join(xdg, "lantern") {
		t.Fatalf("defaultDataDir() = %s, want it in $XDG_DATA_HOME", def)
	}
	demo := filepath.Join(t.TempDir(), ".lantern-demo")
	upOf := func(dir string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "up"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "up", upAPIFile), []byte("http://127.0.0.1:8080\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	found := func() (string, string) {
		var errb bytes.Buffer
		got := runningUpData(&stdio{out: &bytes.Buffer{}, err: &errb}, def)
		return got, errb.String()
	}

	// Nothing runs anywhere: the default, said nothing of.
	if got, said := found(); got != def || said != "" {
		t.Errorf("no up running: %s (%q), want the default %s", got, said, def)
	}

	// An up elsewhere names its data dir, and rebuild takes it, saying so.
	upOf(demo)
	forget, err := nameUpElsewhere(demo)
	if err != nil {
		t.Fatal(err)
	}
	if got, said := found(); got != demo || !strings.Contains(said, "--data "+demo) {
		t.Errorf("an up running with --data %s: rebuild took %s (%q)", demo, got, said)
	}
	if st, err := os.Stat(filepath.Join(def, upElsewhereFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want a file only its user reads", upElsewhereFile, st, err)
	}

	// An up running in the default data dir comes first.
	upOf(def)
	if got, _ := found(); got != def {
		t.Errorf("ups in the default and elsewhere: rebuild took %s, want the default's", got)
	}
	os.RemoveAll(filepath.Join(def, "up"))

	// The up elsewhere stopped (its API file gone) with the file left, as
	// after a kill -9: not taken.
	os.Remove(filepath.Join(demo, "up", upAPIFile))
	if got, _ := found(); got != def {
		t.Errorf("a stopped up's name left over: rebuild took %s, want the default", got)
	}
	upOf(demo)

	// What is not an absolute, clean directory name of one line is not
	// taken, nor is a file too large to be one.
	name := filepath.Join(def, upElsewhereFile)
	rel, err := filepath.Rel(mustGetwd(t), demo)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{rel + "\n", demo + "/../" + filepath.Base(demo) + "\n", demo + "\n\n", "\n" + demo, demo + "\r\n", strings.Repeat("/", 5000) + demo} {
		if err := os.WriteFile(name, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _ := found(); got != def {
			t.Errorf("%s holding %q: rebuild took %s, want the default", upElsewhereFile, bad, got)
		}
	}
	// A directory in its place is not read.
	os.Remove(name)
	if err := os.Mkdir(name, 0o700); err != nil {
		t.Fatal(err)
	}
	if got, _ := found(); got != def {
		t.Errorf("%s a directory: rebuild took %s, want the default", upElsewhereFile, got)
	}
	os.Remove(name)

	// Stopping removes the name only while it is still this up's: another
	// up started elsewhere since keeps its own.
	forget, err = nameUpElsewhere(demo)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	upOf(other)
	if _, err := nameUpElsewhere(other); err != nil {
		t.Fatal(err)
	}
	forget()
	if got, _ := found(); got != other {
		t.Errorf("the first up stopped after another started: rebuild took %s, want the other's %s", got, other)
	}

	// An up in the default data dir writes nothing there.
	os.Remove(name)
	forget, err = nameUpElsewhere(def)
	if err != nil {
		t.Fatal(err)
	}
	forget()
	if _, err := os.Lstat(name); err == nil {
		t.Errorf("an up in the default data dir wrote %s", upElsewhereFile)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
