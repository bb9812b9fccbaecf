package recipes

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lanternfarm/lantern"
)

// files are the recipe files, NAME/vN.json. A file never changes once
// released: its digest is in every attestation made with it.
//
//go:embed */v*.json
var files embed.FS

// BuildTypeBase prefixes every recipe's build type: BuildTypeBase + NAME +
// "/v" + N. It is attest.URIBase + "recipes/".
const BuildTypeBase = "https://lanternfarm.github.io/lantern/recipes/"

// ErrNoRecipe reports a recipe name or version that Lantern does not have.
var ErrNoRecipe = errors.New("no such recipe")

// Recipe is one version of a recipe file, parsed.
type Recipe struct {
	// Name is the recipe's name, as jobs and source claims give it ("go").
	Name string
	// Version is the file's version, N in NAME/vN.json.
	Version int
	// BuildType is the URI that names the recipe and its version.
	BuildType string
	// Digest is the SHA-256 of the file's bytes.
	Digest lantern.Digest
	// Summary says what the recipe builds, for people.
	Summary string
	// Check is the command with which anyone can rebuild a result outside
	// the farm, with {placeholders}.
	Check string
	// Go holds the parameters of the go recipe; nil for other recipes.
	Go *GoParams
	// Generic holds the parameters of the generic recipe; nil for others.
	Generic *GenericParams

	raw []byte
}

// GoParams are what a version of the go recipe fixes. Strings may hold
// {placeholders}, which PrepareGo and GoLLB fill in.
type GoParams struct {
	// DefaultGoVersion is the Go version ("1.24.4") used when a build names
	// none; DefaultGOOS and DefaultGOARCH the target likewise.
	DefaultGoVersion string `json:"defaultGoVersion"`
	DefaultGOOS      string `json:"defaultGOOS"`
	DefaultGOARCH    string `json:"defaultGOARCH"`
	// Toolchain is the module@version of the toolchain, from {goVersion}
	// and {hostArch}, the architecture of the machine the sandbox runs on.
	Toolchain string `json:"toolchain"`
	// Paths are where the sandbox sees the toolchain and the file GOPROXY
	// (read-only), its scratch space (tmpfs) and the output directory.
	Paths GoPaths `json:"paths"`
	// Dir is the working directory of the build.
	Dir string `json:"dir"`
	// Args is the build command. An argument that is {tagsFlag} is
	// -tags=a,b for a build with tags, and left out for one without.
	Args []string `json:"args"`
	// Env is the build's whole environment.
	Env map[string]string `json:"env"`
}

// GoPaths are the mount points of the go recipe's sandbox.
type GoPaths struct {
	Toolchain string `json:"toolchain"`
	GoProxy   string `json:"goproxy"`
	Tmp       string `json:"tmp"`
	Out       string `json:"out"`
}

// Ref returns the recipe as attestations name it.
func (r *Recipe) Ref() lantern.Recipe {
	return lantern.Recipe{BuildType: r.BuildType, Digest: r.Digest}
}

// Bytes returns a copy of the recipe file, whose SHA-256 is r.Digest.
func (r *Recipe) Bytes() []byte { return bytes.Clone(r.raw) }

// Load returns the latest version of the recipe called name.
func Load(name string) (*Recipe, error) {
	vs, err := versions(name)
	if err != nil {
		return nil, err
	}
	return LoadVersion(name, vs[len(vs)-1])
}

// LoadVersion returns version v of the recipe called name.
func LoadVersion(name string, v int) (*Recipe, error) {
	if _, err := versions(name); err != nil {
		return nil, err
	}
	b, err := files.ReadFile(fileName(name, v))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load recipe %s v%d: %w: %s has no version %d", name, v, ErrNoRecipe, name, v)
	}
	if err != nil {
		return nil, fmt.Errorf("load recipe %s v%d: %w", name, v, err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("load recipe %s: %w", fileName(name, v), err)
	}
	if r.Name != name || r.Version != v {
		return nil, fmt.Errorf("load recipe %s: it says it is %s v%d", fileName(name, v), r.Name, r.Version)
	}
	return r, nil
}

// ByDigest returns the recipe version whose file has digest d: what an
// attestation's recipe digest means.
func ByDigest(d lantern.Digest) (*Recipe, error) {
	for _, n := range Names() {
		vs, _ := versions(n)
		for _, v := range vs {
			r, err := LoadVersion(n, v)
			if err != nil {
				return nil, err
			}
			if r.Digest == d {
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("recipe %s: %w", d, ErrNoRecipe)
}

// Names returns the names of the recipes Lantern has, sorted.
func Names() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func fileName(name string, v int) string { return name + "/v" + strconv.Itoa(v) + ".json" }

var versionFile = regexp.MustCompile(`^v([1-9][0-9]*)\.json$`)

// versions returns the versions of the recipe called name, ascending.
func versions(name string) ([]int, error) {
	if !validRecipeName(name) {
		return nil, fmt.Errorf("load recipe %q: %w: want one of %s", name, ErrNoRecipe, strings.Join(Names(), ", "))
	}
	entries, err := files.ReadDir(name)
	if err != nil || len(entries) == 0 {
		return nil, fmt.Errorf("load recipe %q: %w: want one of %s", name, ErrNoRecipe, strings.Join(Names(), ", "))
	}
	var vs []int
	for _, e := range entries {
		m := versionFile.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("load recipe %q: %w", name, ErrNoRecipe)
	}
	slices.Sort(vs)
	return vs, nil
}

var recipeName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

func validRecipeName(name string) bool { return recipeName.MatchString(name) }

// file is the JSON form of a recipe file.
type file struct {
	Name      string         `json:"name"`
	Version   int            `json:"version"`
	BuildType string         `json:"buildType"`
	Summary   string         `json:"summary"`
	Check     string         `json:"check"`
	Go        *GoParams      `json:"go"`
	Generic   *GenericParams `json:"generic"`
}

// Parse reads a recipe file strictly: unknown fields, a build type that does
// not match the name and version, a missing field or an unknown placeholder
// are errors.
func Parse(b []byte) (*Recipe, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse recipe: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse recipe: data after the recipe's object")
	}
	if !validRecipeName(f.Name) {
		return nil, fmt.Errorf("parse recipe: name %q: want lower-case letters, digits and dashes", f.Name)
	}
	if f.Version < 1 {
		return nil, fmt.Errorf("parse recipe %s: version %d: want 1 or more", f.Name, f.Version)
	}
	if want := BuildTypeBase + f.Name + "/v" + strconv.Itoa(f.Version); f.BuildType != want {
		return nil, fmt.Errorf("parse recipe %s: buildType %q: want %q", f.Name, f.BuildType, want)
	}
	if f.Summary == "" {
		return nil, fmt.Errorf("parse recipe %s: summary: missing", f.Name)
	}
	keys := checkKeys
	if f.Name == lantern.RecipeGeneric {
		keys = genericCheckKeys
	}
	if err := checkPlaceholders("check", f.Check, keys); err != nil {
		return nil, fmt.Errorf("parse recipe %s: %w", f.Name, err)
	}
	switch {
	case f.Name == "go" && f.Go == nil:
		return nil, fmt.Errorf("parse recipe go: go: missing")
	case f.Name != "go" && f.Go != nil:
		return nil, fmt.Errorf("parse recipe %s: go: only the go recipe has Go parameters", f.Name)
	case f.Name == lantern.RecipeGeneric && f.Generic == nil:
		return nil, fmt.Errorf("parse recipe generic: generic: missing")
	case f.Name != lantern.RecipeGeneric && f.Generic != nil:
		return nil, fmt.Errorf("parse recipe %s: generic: only the generic recipe has generic parameters", f.Name)
	}
	if f.Go != nil {
		if err := f.Go.validate(); err != nil {
			return nil, fmt.Errorf("parse recipe %s: go.%w", f.Name, err)
		}
	}
	if f.Generic != nil {
		if err := f.Generic.validate(); err != nil {
			return nil, fmt.Errorf("parse recipe %s: generic.%w", f.Name, err)
		}
	}
	return &Recipe{
		Name:      f.Name,
		Version:   f.Version,
		BuildType: f.BuildType,
		Digest:    lantern.DigestOf(b),
		Summary:   f.Summary,
		Check:     f.Check,
		Go:        f.Go,
		Generic:   f.Generic,
		raw:       bytes.Clone(b),
	}, nil
}

// The placeholders each kind of field may hold.
var (
	checkKeys     = []string{"goVersion", "goos", "goarch", "package", "version", "tagsFlag"}
	toolchainKeys = []string{"goVersion", "hostArch"}
	buildKeys     = []string{"goVersion", "goos", "goarch", "package", "version", "hostArch",
		"toolchain", "goproxy", "goproxyURL", "tmp", "out", "tagsFlag"}
)

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

func checkPlaceholders(field, s string, allowed []string) error {
	for _, p := range placeholder.FindAllString(s, -1) {
		if !slices.Contains(allowed, p[1:len(p)-1]) {
			return fmt.Errorf("%s: unknown placeholder %s in %q: want one of {%s}", field, p, s, strings.Join(allowed, "}, {"))
		}
	}
	if rest := placeholder.ReplaceAllString(s, ""); strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%s: unbalanced braces in %q", field, s)
	}
	return nil
}

var (
	goVersionRE = regexp.MustCompile(`^[1-9][0-9]*\.[0-9]+(\.[0-9]+|rc[0-9]+)$`)
	goosArchRE  = regexp.MustCompile(`^[a-z0-9]+$`)
	envName     = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
)

func (p *GoParams) validate() error {
	if !goVersionRE.MatchString(p.DefaultGoVersion) {
		return fmt.Errorf("defaultGoVersion %q: want a Go release such as 1.24.4", p.DefaultGoVersion)
	}
	if !goosArchRE.MatchString(p.DefaultGOOS) || !goosArchRE.MatchString(p.DefaultGOARCH) {
		return fmt.Errorf("defaultGOOS/defaultGOARCH %q/%q: want values of GOOS and GOARCH", p.DefaultGOOS, p.DefaultGOARCH)
	}
	if p.Toolchain == "" {
		return errors.New("toolchain: missing")
	}
	if err := checkPlaceholders("toolchain", p.Toolchain, toolchainKeys); err != nil {
		return err
	}
	for _, m := range []struct{ name, path string }{
		{"toolchain", p.Paths.Toolchain}, {"goproxy", p.Paths.GoProxy}, {"tmp", p.Paths.Tmp}, {"out", p.Paths.Out},
	} {
		if !path.IsAbs(m.path) || path.Clean(m.path) != m.path || m.path == "/" || strings.ContainsAny(m.path, "{}") {
			return fmt.Errorf("paths.%s %q: want a clean absolute path below /", m.name, m.path)
		}
	}
	if err := checkPlaceholders("dir", p.Dir, buildKeys); err != nil {
		return err
	}
	if p.Dir == "" {
		return errors.New("dir: missing")
	}
	if len(p.Args) == 0 {
		return errors.New("args: missing")
	}
	for i, a := range p.Args {
		if err := checkPlaceholders(fmt.Sprintf("args[%d]", i), a, buildKeys); err != nil {
			return err
		}
		if strings.Contains(a, "{tagsFlag}") && a != "{tagsFlag}" {
			return fmt.Errorf("args[%d] %q: {tagsFlag} stands alone as an argument, which is left out without tags", i, a)
		}
	}
	if strings.Contains(p.Dir, "{tagsFlag}") {
		return errors.New("dir: {tagsFlag} is for the command's arguments")
	}
	for k, v := range p.Env {
		if strings.Contains(v, "{tagsFlag}") {
			return fmt.Errorf("env.%s: {tagsFlag} is for the command's arguments", k)
		}
	}
	if len(p.Env) == 0 {
		return errors.New("env: missing")
	}
	for k, v := range p.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env: name %q: want upper-case letters, digits and underscores", k)
		}
		if err := checkPlaceholders("env."+k, v, buildKeys); err != nil {
			return err
		}
	}
	return nil
}
