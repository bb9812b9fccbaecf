package main

import (
	"flag"

	"github.com/lanternfarm/lantern"
)

// goBuildFlags are --go and --platform, which say how the go recipe
// builds a Go command: 'lantern claim sign' and 'lantern rebuild' share
// them.
type goBuildFlags struct{ version, platforms string }

func (g *goBuildFlags) register(f *flag.FlagSet) {
	f.StringVar(&g.version, "go", "", "the Go release that builds the command, `VERSION` such as 1.23.4 (1.21.0 or later; default the go recipe's, 1.24.4)")
	f.StringVar(&g.platforms, "platform", "", "the `PLATFORMS` to build for, GOOS/GOARCH separated by commas, such as linux/amd64,linux/arm64,darwin/arm64,windows/amd64; each is a label, NAME-GOOS-GOARCH (.exe for windows) (default the go recipe's, linux/amd64)")
}

// parse returns the claim's GoBuild, or nil when neither flag was given
// (the recipe's defaults, and the job ids of claims made before the flags).
func (g *goBuildFlags) parse() (*lantern.GoBuild, error) {
	if g.version == "" && g.platforms == "" {
		return nil, nil
	}
	var b lantern.GoBuild
	if g.version != "" {
		v, err := lantern.ParseGoVersion(g.version)
		if err != nil {
			return nil, usagef("--go: %v", err)
		}
		b.Version = v
	}
	if g.platforms != "" {
		p, err := lantern.ParseGoPlatforms(g.platforms)
		if err != nil {
			return nil, usagef("--platform: %v", err)
		}
		b.Platforms = p
	}
	return &b, nil
}
