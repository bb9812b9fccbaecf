package gobinary

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// planted is what a hostile binary hides in its build information: a
// terminal escape that clears the screen, a carriage return that
// overwrites the line, and a line of its own that a CI runner reads as a
// command (GitHub Actions' ::error::, ::add-mask::).
const planted = "\x1b[2J\r\n::error::planted"

// shownSafely fails t if msg, an error Read returned, carries a byte of
// planted as it is: a control character other than the line breaks
// errors.Join puts between refusals, or a line the binary wrote.
func shownSafely(t *testing.T, what, msg string) {
	t.Helper()
	for _, line := range strings.Split(msg, "\n") {
		if strings.HasPrefix(line, "::") {
			t.Errorf("%s: Read() = %q, which has a line the binary wrote", what, msg)
		}
		if i := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' }); i >= 0 {
			t.Errorf("%s: Read() = %q, which has control character %q unescaped", what, msg, line[i:i+1])
		}
	}
}

// TestReadHostile: whatever a binary's build information says, Read's
// refusals show it escaped, and bounded: a file planted among a release's
// binaries (a CI job's dist/) must not write to the terminal or the CI log
// that runs lantern rebuild --published, nor fill it.
func TestReadHostile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(info *debug.BuildInfo)
	}{
		{"main module's path, replaced", func(i *debug.BuildInfo) {
			i.Main.Path = "golang.org/x/tools\x1b[2J\u202e"
			i.Main.Replace = &debug.Module{Path: "example.com/fork\x1b]0;title\x07", Version: "v1.0.0\r"}
		}},
		{"main module's path, no version", func(i *debug.BuildInfo) {
			i.Path, i.Main.Path, i.Main.Version = "golang.org/x/tools\x1b[2J/cmd", "golang.org/x/tools\x1b[2J", "(devel)"
		}},
		{"main module's version", func(i *debug.BuildInfo) { i.Main.Version = "v0.30.0\x1b[2J" }},
		{"dependency replaced", func(i *debug.BuildInfo) {
			i.Deps[0].Replace = &debug.Module{Path: "example.com/\x1b[2Jfork", Version: "v1.0.0\x9b2J"}
		}},
		{"vcs stamp", func(i *debug.BuildInfo) { setSetting(i, "vcs.revision", "abc"+planted) }},
		{"unknown setting", func(i *debug.BuildInfo) { setSetting(i, "-ldflags"+planted, "-X main.v="+planted) }},
		{"cgo", func(i *debug.BuildInfo) { setSetting(i, "CGO_ENABLED", "1"+planted) }},
		{"build mode", func(i *debug.BuildInfo) { setSetting(i, "-buildmode", "pie"+planted) }},
		{"compiler", func(i *debug.BuildInfo) { setSetting(i, "-compiler", "gccgo"+planted) }},
		{"a setting twice", func(i *debug.BuildInfo) {
			i.Settings = append(i.Settings, debug.BuildSetting{Key: "GOOS" + planted, Value: "x"}, debug.BuildSetting{Key: "GOOS" + planted, Value: "y"})
		}},
		{"go release", func(i *debug.BuildInfo) { i.GoVersion = "go1.23.4" + planted }},
		{"platform", func(i *debug.BuildInfo) { setSetting(i, "GOOS", "linux"+planted) }},
		{"tags", func(i *debug.BuildInfo) { setSetting(i, "-tags", "a,"+planted) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := installed(t)
			tc.change(info)
			_, err := Read(writeFile(t, craftELF(info.GoVersion, info)))
			if err == nil {
				t.Fatalf("Read() = nil, want a refusal")
			}
			shownSafely(t, tc.name, err.Error())
		})
	}

	t.Run("file name", func(t *testing.T) {
		info := installed(t)
		setSetting(info, "CGO_ENABLED", "1")
		file := filepath.Join(t.TempDir(), "hello"+planted)
		if err := os.WriteFile(file, craftELF(info.GoVersion, info), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Read(file)
		if !errors.Is(err, ErrCgo) {
			t.Fatalf("Read() = %v, want %v", err, ErrCgo)
		}
		shownSafely(t, "file name", err.Error())
		_, err = Read(file + "-missing")
		if err == nil {
			t.Fatalf("Read(a missing file) = nil")
		}
		shownSafely(t, "missing file's name", err.Error())
	})

	// A binary with a hundred thousand replaced dependencies and as many
	// unknown settings: its refusal says so in a bounded message.
	t.Run("many", func(t *testing.T) {
		info := installed(t)
		for i := range 100_000 {
			info.Deps = append(info.Deps, &debug.Module{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0",
				Replace: &debug.Module{Path: fmt.Sprintf("example.com/fork%d", i), Version: "v1.0.0"}})
			info.Settings = append(info.Settings, debug.BuildSetting{Key: fmt.Sprintf("X%d", i), Value: "y"},
				debug.BuildSetting{Key: fmt.Sprintf("vcs.x%d", i), Value: "y"})
		}
		_, err := Read(writeFile(t, craftELF(info.GoVersion, info)))
		if !errors.Is(err, ErrReplaced) || !errors.Is(err, ErrSetting) || !errors.Is(err, ErrVCS) {
			t.Fatalf("Read() = %.300v, want it replaced, with settings and vcs stamps", err)
		}
		if n := len(err.Error()); n > 16<<10 {
			t.Errorf("Read() = an error of %d bytes, want at most 16 KiB", n)
		}
		if !strings.Contains(err.Error(), "example.com/m0 ") || !strings.Contains(err.Error(), "more") {
			t.Errorf("Read() = %.500v, want the first dependency named and the others counted", err)
		}
	})

	// A huge module path: shown cut short.
	t.Run("huge field", func(t *testing.T) {
		info := installed(t)
		info.Main.Replace = &debug.Module{Path: "example.com/" + strings.Repeat("a", 1<<20)}
		_, err := Read(writeFile(t, craftELF(info.GoVersion, info)))
		if !errors.Is(err, ErrReplaced) {
			t.Fatalf("Read() = %.300v, want %v", err, ErrReplaced)
		}
		if n := len(err.Error()); n > 4<<10 {
			t.Errorf("Read() = an error of %d bytes, want at most 4 KiB", n)
		}
	})
}
