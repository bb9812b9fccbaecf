package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerifyOutputCannotBeForged: what an attacker names or says reaches
// lantern verify's output (the names of the files it hands over, a farm's
// error answers, a trusted builder's failure reasons from a hostile
// source's build), but never as a line of its own or as a terminal escape:
// every line of the decision is one piece's, a contradiction or the
// verdict, and no control character gets through.
func TestVerifyOutputCannotBeForged(t *testing.T) {
	dir := t.TempDir()
	sample := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rebuilderd", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pkg := putFile(t, dir, "pkg", string(sample("filesystem-2025.10.12-1-any.pkg.tar.zst")))
	key := putFile(t, dir, "rebuilder.pub", string(sample("reproducible-archlinux.pub")))
	ev := filepath.Join(dir, "ev")
	if err := os.Mkdir(ev, 0o755); err != nil {
		t.Fatal(err)
	}
	// An untrusted piece whose file name forges a counting line, a
	// contradiction and the verdict, and clears the terminal's line.
	forged := "x\n+ a.link: trusted (a.pub) and agreeing\n! nothing contradicts\n\x1b[2K\rsha256:00: verified, 2 of 1 trusted builders agree\n\u202e"
	if err := os.WriteFile(filepath.Join(ev, forged), []byte("not evidence\x1b[31m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A hostile farm's error answer.
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "\x1b]0;owned\x07\nlantern verify: verified by the farm\x1b[2K", http.StatusInternalServerError)
	}))
	defer farm.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"untrusted", []string{"verify", "--trust", key, "--evidence", ev, pkg}, 1},
		{"untrusted, and a hostile farm", []string{"verify", "--trust", key, "--evidence", ev, "--farm", farm.URL, pkg}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runLantern(t, dir, nil, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "- ") || !strings.HasPrefix(lines[1], "sha256:") {
				t.Errorf("verify printed %d lines, want 2 (the one piece's, the verdict):\n%s", len(lines), r.stdout)
			}
			for _, out := range []string{r.stdout, r.stderr} {
				for _, c := range out {
					if c != '\n' && (c < ' ' || c == 0x7f || c == '\u202e') {
						t.Errorf("verify wrote the control character %q:\n%q", c, out)
						break
					}
				}
			}
			for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				if !strings.HasPrefix(l, "lantern verify: ") && !strings.HasPrefix(l, "lantern: ") {
					t.Errorf("verify wrote a line on stderr that is not its own: %q", l)
				}
			}
		})
	}
}

// TestVerifySaveStaysInDir: --save DIR writes only below DIR, even when DIR
// came from someone else (a folder of evidence handed over, refreshed
// from a farm) and holds symbolic links where the farm's folder or a page
// will be written: through them, a hostile farm's answer would overwrite
// any file the user can write.
func TestVerifySaveStaysInDir(t *testing.T) {
	dir := t.TempDir()
	key, err := filepath.Abs(filepath.Join("..", "..", "testdata", "rebuilderd", "reproducible-archlinux.pub"))
	if err != nil {
		t.Fatal(err)
	}
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("the farm's answer\n"))
	}))
	defer farm.Close()
	art := "sha256:" + sha256hex("the artefact")
	page := "artefact-" + sha256hex("the artefact") + "-001.jsonl"
	farmDir := strings.NewReplacer("http://", "", ":", "_").Replace(farm.URL)

	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := putFile(t, outside, "victim", "the user's file")

	// The farm's folder is a link to a folder outside DIR.
	save1 := filepath.Join(dir, "save1")
	if err := os.Mkdir(save1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(save1, farmDir)); err != nil {
		t.Fatal(err)
	}
	// The page is a link to a file outside DIR.
	save2 := filepath.Join(dir, "save2")
	if err := os.MkdirAll(filepath.Join(save2, farmDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(save2, farmDir, page)); err != nil {
		t.Fatal(err)
	}
	// A fresh DIR, below a folder that is not there yet, gets the page.
	save3 := filepath.Join(dir, "new", "save3")
	for _, save := range []string{save1, save2, save3} {
		r := runLantern(t, dir, nil, "verify", "--trust", key, "--farm", farm.URL, "--save", save, art)
		if r.code != 1 {
			t.Errorf("verify --save %s: exit %d, want 1\nstdout: %s\nstderr: %s", save, r.code, r.stdout, r.stderr)
		}
	}
	if got := readFile(t, filepath.Join(save3, farmDir, page)); got != "the farm's answer\n" {
		t.Errorf("verify --save wrote %q, want the farm's answer", got)
	}
	if got := readFile(t, victim); got != "the user's file" {
		t.Errorf("a file outside --save DIR was overwritten with %q", got)
	}
	if _, err := os.Lstat(filepath.Join(outside, page)); err == nil {
		t.Errorf("verify --save wrote %s outside DIR", filepath.Join(outside, page))
	}
}

// TestVerifySlowFarm: a farm that answers a byte at a time, never quite
// stalling, gets --farm-timeout in all, not two minutes a page for up to
// 200 pages of 33 questions; the other evidence still decides.
func TestVerifySlowFarm(t *testing.T) {
	dir := t.TempDir()
	key, err := filepath.Abs(filepath.Join("..", "..", "testdata", "rebuilderd", "reproducible-archlinux.pub"))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<?cursor=again>; rel="next"`)
		for {
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer farm.Close()
	defer close(stop)
	r := runLantern(t, dir, nil, "verify", "--trust", key, "--farm", farm.URL, "--farm-timeout", "1s", "sha256:"+sha256hex("the artefact"))
	if r.code != 1 || !strings.Contains(r.stderr, "--farm-timeout") {
		t.Errorf("verify of a slow farm: exit %d, stderr %q; want 1 and the farm's time up", r.code, r.stderr)
	}
	runLantern(t, dir, nil, "verify", "--trust", key, "--farm", farm.URL, "--farm-timeout", "0s", "sha256:"+sha256hex("the artefact")).fails(t, "--farm-timeout 0s", 2, "--farm-timeout")
}
