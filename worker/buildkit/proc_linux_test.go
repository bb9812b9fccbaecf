package buildkit

import "testing"

func TestUnescapeMountPoint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`/tmp/bk1/root`, `/tmp/bk1/root`},
		{`/tmp/a\040b`, `/tmp/a b`},
		{`/tmp/tab\011x\134y`, "/tmp/tab\tx\\y"},
		{`/tmp/short\04`, `/tmp/short\04`},
		{`/tmp/not\999`, `/tmp/not\999`},
		{`/tmp/end\`, `/tmp/end\`},
	} {
		if got := unescapeMountPoint(tc.in); got != tc.want {
			t.Errorf("unescapeMountPoint(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
