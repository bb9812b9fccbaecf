package main

import (
	"flag"
	"os"
	"strconv"
	"strings"

	"github.com/lanternfarm/lantern/internal/netguard"
)

// fetchFlags adds the settings of where sources may be fetched from, which
// the scheduler checks claims' URLs with and workers fetch by, and returns
// the function that makes them a policy once f is parsed. The default
// allows https to public addresses only.
func fetchFlags(f *flag.FlagSet) func() (netguard.Policy, error) {
	const (
		envPrivate = "LANTERN_ALLOW_PRIVATE_FETCH"
		envHTTP    = "LANTERN_ALLOW_HTTP_FETCH"
		envFrom    = "LANTERN_ALLOW_FETCH_FROM"
	)
	envBool := func(name string) bool { b, _ := strconv.ParseBool(os.Getenv(name)); return b }
	private := f.Bool(netguard.FlagAllowPrivate[2:], envBool(envPrivate),
		"fetch sources from loopback, private and link-local addresses too, for tests and private mirrors (default $"+envPrivate+"; without it, sources come from public addresses only)")
	plain := f.Bool(netguard.FlagAllowHTTP[2:], envBool(envHTTP),
		"fetch sources over plain http too, not only https (default $"+envHTTP+")")
	var from listFlag
	f.Var(&from, netguard.FlagAllowFrom[2:],
		"an address range (`CIDR`, or one address) to fetch sources from even if it is private, such as a mirror's (repeatable; default $"+envFrom+", comma-separated)")
	return func() (netguard.Policy, error) {
		for _, name := range []string{envPrivate, envHTTP} {
			if v := os.Getenv(name); v != "" {
				if _, err := strconv.ParseBool(v); err != nil {
					return netguard.Policy{}, usagef("$%s %q: want true or false", name, v)
				}
			}
		}
		ranges := []string(from)
		if len(ranges) == 0 && os.Getenv(envFrom) != "" {
			ranges = strings.FieldsFunc(os.Getenv(envFrom), func(r rune) bool { return r == ',' || r == ' ' })
		}
		allow, err := netguard.ParseAllow(ranges)
		if err != nil {
			return netguard.Policy{}, usagef("%v", err)
		}
		return netguard.Policy{AllowPrivate: *private, AllowHTTP: *plain, Allow: allow}, nil
	}
}
