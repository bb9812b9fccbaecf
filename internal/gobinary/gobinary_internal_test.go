package gobinary

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
)

// writeFile writes data to a new file and returns its path.
func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(f, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// reasons returns the Err sentinels err wraps, in order.
func reasons(err error) []error {
	var out []error
	for _, r := range []error{ErrNotGoBinary, ErrNoModule, ErrGoVersion, ErrCgo, ErrNoTrimpath, ErrVCS, ErrReplaced, ErrBuildMode, ErrSetting} {
		if errors.Is(err, r) {
			out = append(out, r)
		}
	}
	return out
}

func setSetting(info *debug.BuildInfo, key, value string) {
	for i, s := range info.Settings {
		if s.Key == key {
			info.Settings[i].Value = value
			return
		}
	}
	info.Settings = append(info.Settings, debug.BuildSetting{Key: key, Value: value})
}

func dropSetting(info *debug.BuildInfo, key string) {
	info.Settings = slices.DeleteFunc(info.Settings, func(s debug.BuildSetting) bool { return s.Key == key })
}

// TestReadCrafted reads crafted ELF files through Read, each with the
// build information of a plain go install changed in one way that a go
// install of a module version cannot reproduce, or can.
func TestReadCrafted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(info *debug.BuildInfo)
		want   []error // the reasons; none: accepted
		detail string  // in the error
	}{
		{name: "plain go install", change: func(*debug.BuildInfo) {}},
		{name: "go release too old", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.20.14" },
			want: []error{ErrGoVersion}, detail: "go1.21.0"},
		{name: "go release of old naming", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.19" },
			want: []error{ErrGoVersion}, detail: "go1.21.0"},
		{name: "go language version", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.23" },
			want: []error{ErrGoVersion}, detail: "go1.N.P"},
		{name: "go pre-release too old", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.21rc2" },
			want: []error{ErrGoVersion}},
		{name: "go development build", change: func(i *debug.BuildInfo) { i.GoVersion = "devel go1.25-6e4b2c5 Mon Jan 1 00:00:00 2025 +0000" },
			want: []error{ErrGoVersion}},
		{name: "go experiment", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.23.4 X:boringcrypto" },
			want: []error{ErrGoVersion}},
		{name: "vendor's go", change: func(i *debug.BuildInfo) { i.GoVersion = "go1.23.4-bigcorp" },
			want: []error{ErrGoVersion}},
		{name: "main module replaced", change: func(i *debug.BuildInfo) {
			i.Main.Replace = &debug.Module{Path: "example.com/fork/tools", Version: "v0.30.1", Sum: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
			i.Main.Sum = ""
		}, want: []error{ErrReplaced}, detail: "example.com/fork/tools v0.30.1"},
		{name: "dependency replaced", change: func(i *debug.BuildInfo) {
			i.Deps[0].Replace = &debug.Module{Path: "../mod"}
			i.Deps[0].Sum = ""
		}, want: []error{ErrReplaced}, detail: "golang.org/x/mod v0.23.0 is replaced by ../mod"},
		{name: "devel", change: func(i *debug.BuildInfo) { i.Main.Version = "(devel)"; i.Main.Sum = "" },
			want: []error{ErrVCS}, detail: "(devel)"},
		{name: "vcs stamps", change: func(i *debug.BuildInfo) {
			setSetting(i, "vcs", "git")
			setSetting(i, "vcs.revision", "0123456789abcdef0123456789abcdef01234567")
			setSetting(i, "vcs.modified", "false")
		}, want: []error{ErrVCS}, detail: "vcs.revision=0123456789abcdef0123456789abcdef01234567"},
		{name: "gopath mode", change: func(i *debug.BuildInfo) { i.Main = debug.Module{}; i.Deps = nil },
			want: []error{ErrNoModule}},
		{name: "files on the command line", change: func(i *debug.BuildInfo) { i.Path = "command-line-arguments" },
			want: []error{ErrNoModule}},
		{name: "package outside its module", change: func(i *debug.BuildInfo) { i.Path = "golang.org/x/toolsx/cmd/stringer" },
			want: []error{ErrNoModule}},
		{name: "not a module version", change: func(i *debug.BuildInfo) { i.Main.Version = "v0.30" },
			want: []error{ErrNoModule}},
		{name: "cgo", change: func(i *debug.BuildInfo) { setSetting(i, "CGO_ENABLED", "1") },
			want: []error{ErrCgo}, detail: "CGO_ENABLED=1"},
		{name: "cgo unsaid", change: func(i *debug.BuildInfo) { dropSetting(i, "CGO_ENABLED") },
			want: []error{ErrCgo}},
		{name: "cgo flags and no trimpath", change: func(i *debug.BuildInfo) {
			setSetting(i, "CGO_ENABLED", "1")
			setSetting(i, "CGO_CFLAGS", "-O2 -g")
			dropSetting(i, "-trimpath")
		}, want: []error{ErrCgo, ErrNoTrimpath}},
		{name: "cgo flags with cgo off", change: func(i *debug.BuildInfo) { setSetting(i, "CGO_LDFLAGS", "-static") },
			want: []error{ErrSetting}},
		{name: "no trimpath", change: func(i *debug.BuildInfo) { dropSetting(i, "-trimpath") },
			want: []error{ErrNoTrimpath}, detail: "GOFLAGS=-trimpath"},
		{name: "trimpath false", change: func(i *debug.BuildInfo) { setSetting(i, "-trimpath", "false") },
			want: []error{ErrNoTrimpath}},
		{name: "ldflags", change: func(i *debug.BuildInfo) {
			dropSetting(i, "-trimpath")
			setSetting(i, "-ldflags", "-X main.version=v0.30.0")
		},
			want: []error{ErrNoTrimpath, ErrSetting}, detail: "-ldflags=-X main.version=v0.30.0"},
		{name: "pie", change: func(i *debug.BuildInfo) { setSetting(i, "-buildmode", "pie") },
			want: []error{ErrBuildMode}, detail: "-buildmode=pie"},
		{name: "no buildmode", change: func(i *debug.BuildInfo) { dropSetting(i, "-buildmode") },
			want: []error{ErrBuildMode}},
		{name: "gccgo", change: func(i *debug.BuildInfo) { setSetting(i, "-compiler", "gccgo") },
			want: []error{ErrSetting}},
		{name: "gcflags", change: func(i *debug.BuildInfo) { setSetting(i, "-gcflags", "all=-N -l") },
			want: []error{ErrSetting}, detail: "-gcflags=all=-N -l"},
		{name: "race", change: func(i *debug.BuildInfo) { setSetting(i, "-race", "true") },
			want: []error{ErrSetting}},
		{name: "goexperiment", change: func(i *debug.BuildInfo) { setSetting(i, "GOEXPERIMENT", "rangefunc") },
			want: []error{ErrSetting}},
		{name: "fips", change: func(i *debug.BuildInfo) { setSetting(i, "GOFIPS140", "v1.0.0") },
			want: []error{ErrSetting}},
		{name: "explicit pgo profile", change: func(i *debug.BuildInfo) { setSetting(i, "-pgo", "cpu.pprof") },
			want: []error{ErrSetting}},
		{name: "default pgo profile", change: func(i *debug.BuildInfo) { setSetting(i, "-pgo", "default.pgo") }},
		{name: "unknown setting", change: func(i *debug.BuildInfo) { setSetting(i, "GOFUTURE", "on") },
			want: []error{ErrSetting}, detail: "GOFUTURE=on"},
		{name: "arch variable of another arch", change: func(i *debug.BuildInfo) { setSetting(i, "GOARM64", "v8.0") },
			want: []error{ErrSetting}},
		{name: "setting twice", change: func(i *debug.BuildInfo) {
			i.Settings = append(i.Settings, debug.BuildSetting{Key: "GOOS", Value: "windows"})
		}, want: []error{ErrSetting}, detail: "GOOS twice"},
		{name: "platform with a slash", change: func(i *debug.BuildInfo) { setSetting(i, "GOOS", "linux/../../x") },
			want: []error{ErrSetting}},
		{name: "no platform", change: func(i *debug.BuildInfo) { dropSetting(i, "GOARCH") },
			want: []error{ErrSetting}},
		{name: "bad tags", change: func(i *debug.BuildInfo) { setSetting(i, "-tags", "netgo,a b") },
			want: []error{ErrSetting}},
		// A tag with a dash: -tags takes it, and so does go/v2
		// (lantern.CheckGoTags); a tag that starts with one is a flag.
		{name: "tag with a dash", change: func(i *debug.BuildInfo) { setSetting(i, "-tags", "with-dash,netgo") }},
		{name: "tag of a flag", change: func(i *debug.BuildInfo) { setSetting(i, "-tags", "netgo,-toolexec") },
			want: []error{ErrSetting}},
		{name: "bad arch level", change: func(i *debug.BuildInfo) { setSetting(i, "GOAMD64", "v3 x") },
			want: []error{ErrSetting}},
		{name: "everything", change: func(i *debug.BuildInfo) {
			i.GoVersion = "go1.19"
			setSetting(i, "CGO_ENABLED", "1")
			dropSetting(i, "-trimpath")
			setSetting(i, "vcs", "git")
			setSetting(i, "-buildmode", "c-shared")
			i.Main.Replace = &debug.Module{Path: "./tools"}
		}, want: []error{ErrGoVersion, ErrCgo, ErrNoTrimpath, ErrVCS, ErrReplaced, ErrBuildMode}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := installed(t)
			tc.change(info)
			file := writeFile(t, craftELF(info.GoVersion, info))
			p, err := Read(file)
			if got := reasons(err); !slices.Equal(got, tc.want) {
				t.Fatalf("Read() = %v, want the reasons %v", err, tc.want)
			}
			if err != nil {
				var refused *RefusedError
				if !errors.As(err, &refused) || refused.File != file {
					t.Errorf("Read() = %v, want a *RefusedError for %s", err, file)
				}
				if !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("Read() = %v, want it to say %q", err, tc.detail)
				}
				if p != nil {
					t.Errorf("Read() = %+v and an error", p)
				}
				return
			}
			if p.Package != info.Path || p.Module != info.Main.Path || p.Version != info.Main.Version {
				t.Errorf("Read() = %+v, want the build information's %s in %s %s", p, info.Path, info.Main.Path, info.Main.Version)
			}
		})
	}
}

// TestReadInstalled: what Read makes of a plain go install's build
// information, field by field.
func TestReadInstalled(t *testing.T) {
	info := installed(t)
	data := craftELF(info.GoVersion, info)
	file := writeFile(t, data)
	p, err := Read(file)
	if err != nil {
		t.Fatal(err)
	}
	want := &Published{
		File:      file,
		Digest:    lantern.DigestOf(data),
		Size:      int64(len(data)),
		Package:   "golang.org/x/tools/cmd/stringer",
		Module:    "golang.org/x/tools",
		Version:   "v0.30.0",
		Sum:       "h1:BgcpHewrV5AUp2G9MebG4XPFI1E2W41zU1SaqVA9vJY=",
		GoVersion: "1.23.4",
		GOOS:      "linux",
		GOARCH:    "amd64",
		ArchVar:   "GOAMD64",
		ArchLevel: "v1",
	}
	if diff := cmp.Diff(want, p, cmp.Comparer(func(a, b lantern.Digest) bool { return a == b }), cmpopts.IgnoreFields(Published{}, "Info")); diff != "" {
		t.Errorf("Read() mismatch (-want +got):\n%s", diff)
	}
	if p.Info == nil || p.Info.String() != info.String() {
		t.Errorf("Read().Info = %v, want %v", p.Info, info)
	}
	if got, want := p.Label(), "stringer-linux-amd64"; got != want {
		t.Errorf("Label() = %q, want %q", got, want)
	}

	// A pre-release, tags, and a major version suffix.
	info.GoVersion = "go1.24rc1"
	info.Path, info.Main.Path = "example.com/tool/v2", "example.com/tool/v2"
	info.Main.Version = "v2.1.0"
	setSetting(info, "-tags", "netgo,osusergo")
	setSetting(info, "GOARCH", "arm64")
	setSetting(info, "GOOS", "windows")
	dropSetting(info, "GOAMD64")
	setSetting(info, "GOARM64", "v8.2")
	p, err = Read(writeFile(t, craftELF(info.GoVersion, info)))
	if err != nil {
		t.Fatal(err)
	}
	if p.GoVersion != "1.24rc1" || !slices.Equal(p.Tags, []string{"netgo", "osusergo"}) || p.ArchVar != "GOARM64" || p.ArchLevel != "v8.2" {
		t.Errorf("Read() = %+v, want go 1.24rc1, tags netgo,osusergo, GOARM64=v8.2", p)
	}
	if got, want := p.Label(), recipes.GoLabel("example.com/tool/v2", "windows", "arm64"); got != want || !strings.HasPrefix(got, "tool-windows-arm64") {
		t.Errorf("Label() = %q, want %q", got, want)
	}
}

// TestReadNotGo: files that are not Go binaries, or not whole ones, are
// refused as such; files that are not files are errors.
func TestReadNotGo(t *testing.T) {
	whole := craftELF(installed(t).GoVersion, installed(t))
	for name, data := range map[string][]byte{
		"empty":                   {},
		"shell script":            []byte("#!/bin/sh\necho hello\n"),
		"elf header only":         whole[:64],
		"truncated in the blob":   whole[:len(whole)-40],
		"no build information":    craftELF("", nil),
		"go version, no modinfo":  craftELF("go1.23.4", nil),
		"a magic in a text file":  []byte("\xff Go buildinf:\x08\x02" + strings.Repeat("\x00", 16) + "\x08go1.23.4\x00"),
		"pe header only":          []byte("MZ" + strings.Repeat("\x00", 62)),
		"mach-o header only":      []byte("\xcf\xfa\xed\xfe" + strings.Repeat("\x00", 28)),
		"random":                  []byte("\x8a\x13\x9c\xf0\x01\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"),
		"go version only, a file": append([]byte{}, whole[:len(whole)/2]...),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Read(writeFile(t, data))
			if err == nil {
				t.Fatalf("Read() = %+v, want an error", p)
			}
			if !errors.Is(err, ErrNotGoBinary) && !errors.Is(err, ErrNoModule) {
				t.Errorf("Read() = %v, want %v or %v", err, ErrNotGoBinary, ErrNoModule)
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		_, err := Read(t.TempDir())
		var refused *RefusedError
		if err == nil || errors.As(err, &refused) {
			t.Errorf("Read(a directory) = %v, want an error other than a refusal", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Read(filepath.Join(t.TempDir(), "nothing"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Read(a missing file) = %v, want %v", err, os.ErrNotExist)
		}
	})
	t.Run("too large", func(t *testing.T) {
		defer func(n int64) { MaxSize = n }(MaxSize)
		MaxSize = int64(len(whole) - 1)
		_, err := Read(writeFile(t, whole))
		if err == nil || !strings.Contains(err.Error(), "bytes") {
			t.Errorf("Read(a file over MaxSize) = %v, want an error that says its size", err)
		}
	})
}

// FuzzRead reads arbitrary bytes written to a file: Read never panics, and
// what it accepts holds to what it promises.
func FuzzRead(f *testing.F) {
	info := installed(f)
	f.Add(craftELF(info.GoVersion, info))
	f.Add(craftELF("go1.23.4", nil))
	f.Add([]byte("#!/bin/sh\n"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "bin")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Read(file)
		if err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) && len(reasons(err)) == 0 {
				t.Fatalf("Read() = %v, a refusal without a reason", err)
			}
			return
		}
		if p.Digest != lantern.DigestOf(data) || p.Size != int64(len(data)) {
			t.Errorf("Read() = %s, %d bytes, want the file's digest and size", p.Digest, p.Size)
		}
		if !goRelease.MatchString("go"+p.GoVersion) || !platformPart.MatchString(p.GOOS) || !platformPart.MatchString(p.GOARCH) {
			t.Errorf("Read() accepted go %q, %q/%q", p.GoVersion, p.GOOS, p.GOARCH)
		}
		if p.Package == "" || p.Module == "" || p.Version == "" || strings.ContainsAny(p.Label(), "/\\ \n") {
			t.Errorf("Read() accepted package %q of %s %s, label %q", p.Package, p.Module, p.Version, p.Label())
		}
	})
}
