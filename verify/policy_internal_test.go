package verify

import "testing"

func TestAuthorNames(t *testing.T) {
	for _, tc := range []struct {
		author, name string
		want         bool
	}{
		{"golang.org/x/tools/...", "golang.org/x/tools", true},
		{"golang.org/x/tools/...", "golang.org/x/tools/cmd/stringer", true},
		{"golang.org/x/tools/...", "golang.org/x/toolsmith", false},
		{"golang.org/x/tools/...", "golang.org/x", false},
		{"golang.org/x/tools/...", "golang.org/x/tools/...", true},
		{"golang.org/x/tools/...", "golang.org/x/tool", false},
		{"golang.org/x/tools", "golang.org/x/tools", true},
		{"golang.org/x/tools", "golang.org/x/tools/cmd/stringer", false},
		{"golang.org/x/tools", "GOLANG.ORG/x/tools", false},
		{"golang.org/x/tools", "golang.org/x/tools/", false},
	} {
		if got := (Author{Name: tc.author}).authors(tc.name); got != tc.want {
			t.Errorf("Author{%q}.authors(%q) = %v, want %v", tc.author, tc.name, got, tc.want)
		}
	}
}
