package goproxy

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseGOSUMDB: what GOSUMDB says is a checksum database or an error;
// never "off", and a URL only of http(s) with a host.
func FuzzParseGOSUMDB(f *testing.F) {
	for _, s := range []string{
		"", "sum.golang.org", "off", "sum.golang.org https://sum.golang.org",
		sumGolangOrg, sumGolangOrg + " https://sum.example/", sumGolangOrg + " file:///etc",
		"a+b+c http://", "a+b+c https://x y", "a+b+c https://x//", " off ", "sumdb.test+1+x javascript:alert(1)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, base, err := parseGOSUMDB(s)
		if err != nil {
			return
		}
		if key == "" || key == "off" || !strings.Contains(key, "+") {
			t.Fatalf("parseGOSUMDB(%q) = key %q: want a database's key", s, key)
		}
		if base != "" {
			u, err := url.Parse(base)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(base, "/") {
				t.Fatalf("parseGOSUMDB(%q) = URL %q: want an http(s) URL with a host, no trailing slash", s, base)
			}
		}
	})
}
