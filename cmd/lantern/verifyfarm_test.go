package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
)

// hostStringer installs stringer on this machine the way the go recipe says
// anyone can, to check a farm's result, and returns the binary's path:
//
//	GOTOOLCHAIN=go1.24.4 GOFLAGS=-trimpath CGO_ENABLED=0 go install golang.org/x/tools/cmd/stringer@v0.30.0
//
// The go command on the PATH downloads the toolchain and the modules from
// the module proxy and checks them against the checksum database.
func hostStringer(t *testing.T) string { return hostStringerInstall(t, "1.24.4", "linux", "amd64") }

// hostStringerInstall installs stringer@v0.30.0 on this machine with Go release
// goVersion for goos/goarch, as a project publishing it would, and returns
// the binary's path:
//
//	GOTOOLCHAIN=go<goVersion> GOFLAGS=-trimpath CGO_ENABLED=0 GOOS=… GOARCH=… go install golang.org/x/tools/cmd/stringer@v0.30.0
func hostStringerInstall(t *testing.T, goVersion, goos, goarch string) string {
	t.Helper()
	cache := filepath.Join(os.TempDir(), "lantern-recipes-test-cache") // shared with the recipes tests
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	gopath := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", "install", "golang.org/x/tools/cmd/stringer@v0.30.0")
	cmd.Dir = t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "GOTOOLCHAIN=go"+goVersion, "GOFLAGS=-trimpath -modcacherw", "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch,
		"GOPATH="+gopath, "GOMODCACHE="+filepath.Join(cache, "host-modcache"), "GOCACHE="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOTOOLCHAIN=go%s GOOS=%s GOARCH=%s %s: %v\n%s", goVersion, goos, goarch, strings.Join(cmd.Args, " "), err, out)
	}
	// A binary for another platform than the host's goes in bin/GOOS_GOARCH.
	name := filepath.Join(gopath, "bin", "stringer")
	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		name = filepath.Join(gopath, "bin", goos+"_"+goarch, "stringer")
	}
	if goos == "windows" {
		name += ".exe"
	}
	return name
}

func keyID(t *testing.T, pubFile string) lantern.Digest {
	t.Helper()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.ParsePublic(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// verifyOnFarm is issue 11's must-shows 1 and 2, on a `lantern up` whose
// two builders reproduced stringer (vd): a client checks a plain host
// install of stringer with its own keys and threshold, online and offline,
// and what a trusted builder's other bytes, an author's yank and evidence
// from keys it does not trust do to the decision.
func verifyOnFarm(t *testing.T, dir, data string, up *upProcess, stringer string, vd lantern.Verdict) string {
	b1, b2 := filepath.Join(data, "up", "builder-1.pub"), filepath.Join(data, "up", "builder-2.pub")
	bin := hostStringer(t)
	if d, _, err := lantern.DigestFile(bin); err != nil || len(vd.Groups) == 0 || d != vd.Groups[0].Output {
		t.Fatalf("the host's go install of stringer is %s (%v), the farm's %+v", d, err, vd.Groups)
	}
	verify := func(args ...string) result {
		return runLantern(t, dir, nil, append([]string{"verify"}, args...)...)
	}
	farm := []string{"--farm", up.url}
	both := []string{"--trust", b1, "--trust", b2}

	// 1. Both builders trusted, two must agree: verified.
	r := verify(append(append(farm, both...), "--threshold", "2", bin)...).must(t, "verify --threshold 2")
	if !strings.Contains(r.stdout, "verified, 2 of 2 trusted builders agree") || strings.Count("\n"+r.stdout, "\n+ ") != 2 {
		t.Errorf("verify --threshold 2 printed:\n%s\nwant verified, both builders' attestations counted", r.stdout)
	}
	verify(append(append(farm, both...), "--threshold", "3", bin)...).fails(t, "verify --threshold 3", 1, "2 of 3 trusted builders agree")
	verify(append(farm, "--trust", b1, "--threshold", "1", bin)...).must(t, "verify with one key, threshold 1")
	changed := putFile(t, dir, "stringer-changed", "")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(changed, b, 0o755); err != nil {
		t.Fatal(err)
	}
	verify(append(append(farm, both...), "--threshold", "2", changed)...).fails(t, "verify of a changed binary", 1, "0 of 2 trusted builders agree")
	saved := filepath.Join(dir, "saved-evidence")
	verify(append(append(farm, both...), "--threshold", "2", "--save", saved, bin)...).must(t, "verify --save")
	r = verify(append(both, "--threshold", "2", "--evidence", saved, bin)...).must(t, "verify offline from --save")
	if !strings.Contains(r.stdout, "verified, 2 of 2") {
		t.Errorf("offline verify printed:\n%s", r.stdout)
	}

	// 2. A trusted builder's other bytes for the same source and label
	// contradict, naming it.
	pw := []string{"LANTERN_PASSWORD="}
	src := vd.Source
	other := putFile(t, dir, vd.Label, "not stringer")
	contra := filepath.Join(dir, "contra.json")
	runLantern(t, dir, pw, "attest", "sign", "--key", filepath.Join(data, "up", "builder-1.key"), "--source", src.String(),
		"--source-digest", src.Digest.String(), "--label", vd.Label, "-o", contra, other).must(t, "attest sign of other bytes")
	r = verify(append(append(farm, both...), "--threshold", "2", "--evidence", contra, bin)...)
	r.fails(t, "verify with a trusted builder's other bytes", 3, "contradicted")
	if id := keyID(t, b1).String(); !strings.Contains(r.stdout, "contradicts: trusted builder "+id) {
		t.Errorf("the contradiction does not name builder %s:\n%s", id, r.stdout)
	}
	// The same from a key nobody trusts changes nothing, and its rebuild
	// to exactly these bytes does not count either.
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", filepath.Join(dir, "stranger")).must(t, "keygen stranger")
	stranger := filepath.Join(dir, "stranger.key")
	untrusted := filepath.Join(dir, "untrusted-contra.json")
	runLantern(t, dir, pw, "attest", "sign", "--key", stranger, "--source", src.String(),
		"--source-digest", src.Digest.String(), "--label", vd.Label, "-o", untrusted, other).must(t, "attest sign by a stranger")
	agrees := filepath.Join(dir, "untrusted-agree.json")
	runLantern(t, dir, pw, "attest", "sign", "--key", stranger, "--source", src.String(),
		"--source-digest", src.Digest.String(), "--label", vd.Label, "-o", agrees, bin).must(t, "attest sign by a stranger")
	r = verify(append(append(farm, both...), "--threshold", "2", "--evidence", untrusted, "--evidence", agrees, bin)...).must(t, "verify with a stranger's contradiction")
	if !strings.Contains(r.stdout, untrusted+": untrusted key") || !strings.Contains(r.stdout, agrees+": untrusted key") {
		t.Errorf("the stranger's evidence is not said to be from an untrusted key:\n%s", r.stdout)
	}
	verify(append(append(farm, both...), "--threshold", "3", "--evidence", agrees, bin)...).fails(t, "verify with a stranger's agreement", 1, "2 of 3")

	// An author's yank of the source contradicts; a stranger's does not.
	claimer := filepath.Join(data, "up", "claimer.key")
	author := []string{"--author", src.Name + "=" + filepath.Join(data, "up", "claimer.pub")}
	verify(append(append(append(farm, both...), author...), "--threshold", "2", bin)...).must(t, "verify with the author's claim")
	yank := filepath.Join(dir, "yank.json")
	runLantern(t, dir, pw, "claim", "yank", "--key", claimer, "--source", src.String(), "--source-digest", src.Digest.String(),
		"--reason", "the archive was replaced", "-o", yank).must(t, "claim yank")
	r = verify(append(append(append(farm, both...), author...), "--threshold", "2", "--evidence", yank, bin)...)
	r.fails(t, "verify with the author's yank", 3, "yanked")
	if !strings.Contains(r.stdout, "the archive was replaced") {
		t.Errorf("the yank's reason is not shown:\n%s", r.stdout)
	}
	strangerYank := filepath.Join(dir, "stranger-yank.json")
	runLantern(t, dir, pw, "claim", "yank", "--key", stranger, "--source", src.String(), "--source-digest", src.Digest.String(),
		"-o", strangerYank).must(t, "claim yank by a stranger")
	verify(append(append(append(farm, both...), author...), "--threshold", "2", "--evidence", strangerYank, bin)...).must(t, "verify with a stranger's yank")
	return bin
}

var upBuildkitd = regexp.MustCompile(`started buildkitd"? addr=(\S+)`)

// twoFarms is issue 11's must-show 3: a second farm with a builder of its
// own rebuilds the same claim; farm A's first builder answered on both. A
// client that trusts all three builders counts evidence from both farms
// together, and farm A's first builder once.
func twoFarms(t *testing.T, dir, dataA string, upA *upProcess, buildkitd, stringer, claimFile, bin string) {
	dataB := filepath.Join(dir, "data-b")
	if err := os.MkdirAll(filepath.Join(dataB, "claimers"), 0o755); err != nil {
		t.Fatal(err)
	}
	claimerPub, err := os.ReadFile(filepath.Join(dataA, "up", "claimer.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataB, "claimers", "farm-a.pub"), claimerPub, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--builders", "1"}
	if m := upBuildkitd.FindStringSubmatch(upA.logs.String()); m != nil {
		args = append(args, "--buildkit", strings.Trim(m[1], `"`)) // share farm A's buildkitd and its cache
	}
	upB := startUp(t, dir, dataB, buildkitd, args...)
	defer upB.stop(t)
	claim, err := os.ReadFile(claimFile)
	if err != nil {
		t.Fatal(err)
	}
	// As farm A received it: the claim's id is the digest of the bytes posted.
	post(t, upB.url+"/api/v1/claims", bytes.TrimSuffix(claim, []byte("\n")), http.StatusAccepted)
	a1 := filepath.Join(dataA, "up", "builder-1.pub")
	runLantern(t, dir, nil, "builder", "add", "farm-a-builder-1", a1, "--data", dataB, "--out", filepath.Join(dir, "farm-a-builder-1.creds")).must(t, "builder add on farm B")

	// Farm B's own builder rebuilds it.
	deadline := time.Now().Add(15 * time.Minute)
	for {
		v, code := upB.source(t, stringer)
		if code == http.StatusOK && len(v.Attestations) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("farm B: %s not rebuilt within 15 minutes", stringer)
		}
		time.Sleep(time.Second)
	}
	// Farm A's first builder's attestation, posted to farm B too.
	var src struct {
		Attestations []struct {
			Envelope lantern.Digest
			Builder  lantern.Digest
		}
	}
	getJSON(t, upA.url+"/api/v1/sources/"+stringer, &src)
	var raw []byte
	for _, a := range src.Attestations {
		if a.Builder == keyID(t, a1) {
			raw = get(t, upA.url+"/api/v1/attestations/"+a.Envelope.String())
		}
	}
	if raw == nil {
		t.Fatalf("farm A has no attestation by its first builder: %+v", src)
	}
	// The running scheduler takes the new builder up within a second or two.
	for i := 0; ; i++ {
		code, body := postBody(t, upB.url+"/api/v1/attestations", raw)
		if code == http.StatusAccepted {
			break
		}
		if i == 60 {
			t.Fatalf("farm B refuses farm A's builder's attestation: %d %s", code, body)
		}
		time.Sleep(time.Second)
	}

	trust := []string{"--trust", a1, "--trust", filepath.Join(dataA, "up", "builder-2.pub"), "--trust", filepath.Join(dataB, "up", "builder-1.pub")}
	farms := []string{"--farm", upA.url, "--farm", upB.url}
	var r result
	for i := 0; ; i++ { // farm B stores the posted attestation as it comes off its bus
		r = runLantern(t, dir, nil, append(append(append([]string{"verify"}, farms...), trust...), "--threshold", "3", "--json", bin)...)
		if r.code == 0 || i == 30 {
			break
		}
		time.Sleep(time.Second)
	}
	r.must(t, "verify over two farms, threshold 3")
	var d struct {
		Agreeing []string
		Evidence []struct {
			Origin, Signer string
			Counts         bool
			Reason         string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	a1ID := keyID(t, a1).String()
	var fromA, fromB int
	for _, e := range d.Evidence {
		if e.Signer != a1ID {
			continue
		}
		switch {
		case strings.HasPrefix(e.Origin, upA.url) && e.Counts:
			fromA++
		case strings.HasPrefix(e.Origin, upB.url) && e.Reason == "already-counted":
			fromB++
		}
	}
	if len(d.Agreeing) != 3 || fromA != 1 || fromB != 1 {
		t.Errorf("over two farms: %d agreeing builders, farm A's first builder counted %d times from farm A and listed %d times as counted already from farm B; want 3, 1, 1:\n%s", len(d.Agreeing), fromA, fromB, r.stdout)
	}
	runLantern(t, dir, nil, append(append(append([]string{"verify"}, farms...), trust...), "--threshold", "4", bin)...).fails(t, "verify over two farms, threshold 4", 1, "3 of 4")
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal(get(t, url), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func postBody(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url string, body []byte, want int) {
	t.Helper()
	if code, b := postBody(t, url, body); code != want {
		t.Fatalf("POST %s: %d %s, want %d", url, code, b, want)
	}
}
