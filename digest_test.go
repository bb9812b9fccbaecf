package lantern_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
)

const emptySHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: emptySHA256},
		{in: "", wantErr: `want "sha256:"`},
		{in: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", wantErr: `want "sha256:"`},
		{in: "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", wantErr: `want "sha256:"`},
		{in: "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", wantErr: `want "sha256:"`},
		{in: "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", wantErr: "not a lower-case hex digit"},
		{in: "sha256:e3b0", wantErr: "want 64 hex digits, have 4"},
		{in: emptySHA256 + "00", wantErr: "want 64 hex digits, have 66"},
		{in: "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", wantErr: `character 'g' at 0`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := lantern.ParseDigest(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDigest(%q) = %v, %v; want error containing %q", tt.in, d, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDigest(%q) = %v", tt.in, err)
			}
			if d.String() != tt.in {
				t.Errorf("String() = %q, want %q", d, tt.in)
			}
		})
	}
}

func TestDigestHashing(t *testing.T) {
	if got := lantern.DigestOf(nil).String(); got != emptySHA256 {
		t.Errorf("DigestOf(nil) = %s, want %s", got, emptySHA256)
	}
	abc := lantern.MustParseDigest("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	d, n, err := lantern.DigestReader(strings.NewReader("abc"))
	if err != nil || n != 3 || d != abc {
		t.Errorf("DigestReader(abc) = %s, %d, %v; want %s, 3", d, n, err, abc)
	}
	path := filepath.Join(t.TempDir(), "abc")
	if err := os.WriteFile(path, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, n, err := lantern.DigestFile(path); err != nil || n != 3 || d != abc {
		t.Errorf("DigestFile() = %s, %d, %v; want %s, 3", d, n, err, abc)
	}
	if _, _, err := lantern.DigestFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("DigestFile(missing) = nil error")
	}
}

func TestDigestJSON(t *testing.T) {
	type doc struct {
		D lantern.Digest `json:"d"`
		Z lantern.Digest `json:"z,omitzero"`
	}
	in := doc{D: lantern.DigestOf([]byte("abc"))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"d":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("Unmarshal = %+v, %v; want %+v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"d":"md5:abc"}`), &out); err == nil {
		t.Error("Unmarshal(md5 digest) = nil error")
	}
	if lantern.DigestOf([]byte("a")) == lantern.DigestOf([]byte("b")) {
		t.Error("digests of different bytes are equal")
	}
	var zero lantern.Digest
	if !zero.IsZero() || zero.String() != "" || zero.Hex() != "" {
		t.Errorf("zero Digest = %q, IsZero %v", zero, zero.IsZero())
	}
}

// TestDigestTextAllocs pins what the API's JSON pays for each digest: one
// allocation to write it, none to read it.
func TestDigestTextAllocs(t *testing.T) {
	d := lantern.DigestOf([]byte("x"))
	text, _ := d.MarshalText()
	if n := testing.AllocsPerRun(100, func() { d.MarshalText() }); n != 1 {
		t.Errorf("MarshalText: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.String() }); n != 1 {
		t.Errorf("String: %v allocations, want 1", n)
	}
	var back lantern.Digest
	if n := testing.AllocsPerRun(100, func() { back.UnmarshalText(text) }); n != 0 || back != d {
		t.Errorf("UnmarshalText: %v allocations, %v; want 0, %v", n, back, d)
	}
}
