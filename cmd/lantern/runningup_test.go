package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRunningUpElsewhere: a 'lantern up' with a data dir of its own (make
// run's .lantern-demo) names it in the default data dir while it runs, and
// rebuild without --data takes it from there only when an up runs there
// now and its files are the user's own; what is planted or left over is
// not taken.
func TestRunningUpElsewhere(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	def := defaultDataDir()
	if def != filepath.Join(xdg, "lantern") {
		t.Fatalf("defaultDataDir() = %s, want it in $XDG_DATA_HOME", def)
	}
	demo := filepath.Join(t.TempDir(), ".lantern-demo")
	name := filepath.Join(def, upElsewhereFile)
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
	stopDemo := fakeUp(t, demo)
	forget, other, err := nameUpElsewhere(demo)
	if err != nil || other != "" {
		t.Fatalf("nameUpElsewhere(%s) = %q, %v", demo, other, err)
	}
	if got, said := found(); got != demo || !strings.Contains(said, "--data "+demo) {
		t.Errorf("an up running with --data %s: rebuild took %s (%q)", demo, got, said)
	}
	if st, err := os.Stat(name); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want a file only its user reads", upElsewhereFile, st, err)
	}

	// An up running in the default data dir comes first.
	stopDef := fakeUp(t, def)
	if got, _ := found(); got != def {
		t.Errorf("ups in the default and elsewhere: rebuild took %s, want the default's", got)
	}
	stopDef()

	// The up elsewhere killed: its name and API file are left, its lock is
	// not held. Neither its dir nor its API is taken.
	stopDemo()
	if got, _ := found(); got != def {
		t.Errorf("a killed up's name left over: rebuild took %s, want the default", got)
	}
	if _, err := farmURL("", demo); err == nil || !strings.Contains(err.Error(), "no longer runs") {
		t.Errorf("farmURL of a killed up's API file = %v, want it refused as left over", err)
	}
	stopDemo = fakeUp(t, demo)

	// Files that are not the user's own, or that others may write.
	for _, p := range []string{demo, filepath.Join(demo, "up"), filepath.Join(demo, "up", upAPIFile), filepath.Join(demo, "up", "claimer.key"), name} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, st.Mode().Perm()|0o022); err != nil {
			t.Fatal(err)
		}
		if got, _ := found(); got != def {
			t.Errorf("%s writable by others: rebuild took %s, want the default", p, got)
		}
		if os.Geteuid() == 0 {
			os.Chmod(p, st.Mode().Perm())
			if err := os.Lchown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if got, _ := found(); got != def {
				t.Errorf("%s owned by nobody: rebuild took %s, want the default", p, got)
			}
			os.Lchown(p, 0, 0)
		}
		os.Chmod(p, st.Mode().Perm())
	}
	if got, _ := found(); got != demo {
		t.Fatalf("after the ownership checks: rebuild took %s, want %s again", got, demo)
	}

	// What is not an absolute, clean, printable directory name of one line
	// is not taken, nor is a file too large to be one.
	rel, err := filepath.Rel(mustGetwd(t), demo)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{rel + "\n", demo + "/../" + filepath.Base(demo) + "\n", demo + "\n\n", "\n" + demo, demo + "\r\n",
		strings.Repeat("/", 5000) + demo} {
		if err := os.WriteFile(name, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _ := found(); got != def {
			t.Errorf("%s holding %q: rebuild took %s, want the default", upElsewhereFile, bad, got)
		}
	}
	// A name with a terminal escape, of a running up's dir all the user's.
	esc := filepath.Join(t.TempDir(), "demo\x1b]0;owned\a")
	stopEsc := fakeUp(t, esc)
	if err := os.WriteFile(name, []byte(esc+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := found(); got != def {
		t.Errorf("%s naming %q: rebuild took %s, want the default", upElsewhereFile, esc, got)
	}
	stopEsc()
	// A directory, a FIFO (which must not hold rebuild up) or a symbolic
	// link in its place is not read.
	os.Remove(name)
	if err := os.Mkdir(name, 0o700); err != nil {
		t.Fatal(err)
	}
	if got, _ := found(); got != def {
		t.Errorf("%s a directory: rebuild took %s, want the default", upElsewhereFile, got)
	}
	os.Remove(name)
	if err := syscall.Mkfifo(name, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := found(); got != def {
		t.Errorf("%s a FIFO: rebuild took %s, want the default", upElsewhereFile, got)
	}
	os.Remove(name)
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte(demo+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
	if got, _ := found(); got != def {
		t.Errorf("%s a symbolic link: rebuild took %s, want the default", upElsewhereFile, got)
	}
	os.Remove(name)

	// A second up elsewhere leaves the first's name while the first runs;
	// stopping, it removes nothing; the first, stopping, removes its own.
	forget, other, err = nameUpElsewhere(demo)
	if err != nil || other != "" {
		t.Fatalf("nameUpElsewhere(%s) = %q, %v", demo, other, err)
	}
	second := filepath.Join(t.TempDir(), "second")
	stopSecond := fakeUp(t, second)
	forgetSecond, other, err := nameUpElsewhere(second)
	if err != nil || other != demo {
		t.Errorf("a second up elsewhere: nameUpElsewhere = %q, %v; want it to leave %s's name", other, err, demo)
	}
	forgetSecond()
	stopSecond()
	if got, _ := found(); got != demo {
		t.Errorf("the second up stopped: rebuild took %s, want the first's %s", got, demo)
	}
	forget()
	if _, err := os.Lstat(name); err == nil {
		t.Errorf("the first up stopped and left %s", upElsewhereFile)
	}
	// The first one killed: a second up elsewhere takes the name over.
	if _, _, err := nameUpElsewhere(demo); err != nil {
		t.Fatal(err)
	}
	stopDemo()
	stopSecond = fakeUp(t, second)
	if _, other, err := nameUpElsewhere(second); err != nil || other != "" {
		t.Errorf("after the first up was killed: nameUpElsewhere(second) = %q, %v; want the name taken over", other, err)
	}
	if got, _ := found(); got != second {
		t.Errorf("after the first up was killed: rebuild took %s, want the second's %s", got, second)
	}

	// An up in the default data dir writes nothing there.
	os.Remove(name)
	forget, _, err = nameUpElsewhere(def)
	if err != nil {
		t.Fatal(err)
	}
	forget()
	if _, err := os.Lstat(name); err == nil {
		t.Errorf("an up in the default data dir wrote %s", upElsewhereFile)
	}

	// Two ups with one data dir: the second is refused.
	if _, err := holdUpLock(filepath.Join(second, "up")); err == nil || !strings.Contains(err.Error(), "another lantern up runs") {
		t.Errorf("a second up's lock of a running up's dir = %v, want it refused", err)
	}
	stopSecond()
}

// TestRebuildTakesRunningUpOnlyForBoth: rebuild takes the farm and claim
// key of an up running elsewhere only when it is given neither: with
// --farm or --key, or --data, it does not say it took that up's.
func TestRebuildTakesRunningUpOnlyForBoth(t *testing.T) {
	dir := t.TempDir()
	xdg := filepath.Join(dir, "xdg")
	t.Setenv("XDG_DATA_HOME", xdg)
	demo := filepath.Join(dir, ".lantern-demo")
	defer fakeUp(t, demo)()
	if _, _, err := nameUpElsewhere(demo); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + xdg, "GOPROXY=http://127.0.0.1:1", "GOSUMDB=sum.golang.org"}
	const took = "the farm and claim key of the lantern up running"
	for _, args := range [][]string{
		{"--farm", "http://127.0.0.1:1"},
		{"--key", filepath.Join(dir, "mine.key")},
		{"--data", filepath.Join(dir, "other")},
	} {
		r := runLantern(t, dir, env, append([]string{"rebuild", "example.com/x@v1.0.0"}, args...)...)
		if r.code == 0 || strings.Contains(r.stderr, took) {
			t.Errorf("rebuild %q: exit %d, %q; want it to fail without taking the running up's farm and key", args, r.code, r.stderr)
		}
	}
	// Given nothing, it takes them (and then fails at the proxy).
	r := runLantern(t, dir, env, "rebuild", "example.com/x@v1.0.0")
	if !strings.Contains(r.stderr, took+" with --data "+demo) {
		t.Errorf("rebuild given nothing: exit %d, %q; want it to take the running up's", r.code, r.stderr)
	}
}

// fakeUp makes dir the data dir of an up that runs (its API file, a claim
// key and its lock held) until stop, which lets go of the lock and leaves
// the files, as a killed up does.
func fakeUp(t *testing.T, dir string) (stop func()) {
	t.Helper()
	up := filepath.Join(dir, "up")
	if err := os.MkdirAll(up, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string]string{upAPIFile: "http://127.0.0.1:8080\n", "claimer.key": "not read here\n"} {
		if err := os.WriteFile(filepath.Join(up, f), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	release, err := holdUpLock(up)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if !done {
			done = true
			release()
		}
	}
	t.Cleanup(stop)
	return stop
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
