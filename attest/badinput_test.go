package attest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
)

// badDir holds the corpus of bad inputs. It is in the top-level testdata/
// because the fuzz targets of attest/dsse and attest/keys seed from it too.
const badDir = "../testdata/bad"

// badFixtures are the files in badDir that are not bad inputs.
var badFixtures = []string{"README.md", "key.key", "key.pub"}

func init() {
	// Other golden-file tests in this package may define -update as well;
	// share the flag rather than panic on redefining it.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files, and the corpus of bad inputs in "+badDir)
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// otherBuilder is the builder that predicate-builder-mismatch.json names;
// the corpus key signs it.
var otherBuilder = lantern.DigestOf([]byte("another builder's public key"))

// badInput is one file of the corpus: how to make it, and the error that
// reading it must give. Files ending in .json are envelopes, read with
// dsse.Parse and attest.Verify against key.pub; files ending in .pub are
// public keys, read with keys.ParsePublic.
type badInput struct {
	file string
	why  string // what is wrong with it, for README.md
	want error  // the sentinel the error wraps
	msg  string // the error names the check: it contains msg
	// signed is set when every signature in the envelope is genuinely
	// key.key's, so that the input fails at its own check, not at the
	// signature.
	signed bool
	make   func(t *testing.T, g *badGen) []byte
}

var badInputs = []badInput{
	{
		file: "envelope-empty.json",
		why:  "an empty file",
		want: dsse.ErrMalformed, msg: "end of the input",
		make: func(t *testing.T, g *badGen) []byte { return nil },
	},
	{
		file: "envelope-truncated.json",
		why:  "a signed envelope cut off halfway: truncated JSON",
		want: dsse.ErrMalformed, msg: "unterminated string",
		make: func(t *testing.T, g *badGen) []byte {
			b := marshalIndent(t, g.goodEnvelope(t))
			return b[:len(b)/2]
		},
	},
	{
		file: "envelope-trailing-data.json",
		why:  "a good envelope followed by text",
		want: dsse.ErrMalformed, msg: "data after",
		make: func(t *testing.T, g *badGen) []byte {
			b := marshalIndent(t, g.goodEnvelope(t))
			return append(b, "this is not part of the envelope\n"...)
		},
	},
	{
		file: "envelope-unknown-field.json",
		why:  `an unknown top-level field "comment" in the envelope`,
		want: dsse.ErrMalformed, msg: `"comment"`,
		make: func(t *testing.T, g *badGen) []byte {
			e := g.goodEnvelope(t)
			e["comment"] = "an envelope has payloadType, payload and signatures only"
			return marshalIndent(t, e)
		},
	},
	{
		file: "envelope-no-payload-type.json",
		why:  "no payloadType",
		want: dsse.ErrMalformed, msg: "no payloadType",
		make: func(t *testing.T, g *badGen) []byte {
			e := g.goodEnvelope(t)
			delete(e, "payloadType")
			return marshalIndent(t, e)
		},
	},
	{
		file: "envelope-payload-base64.json",
		why:  "a '*' in the base64 of the payload",
		want: dsse.ErrBase64, msg: "payload",
		make: func(t *testing.T, g *badGen) []byte {
			e := g.goodEnvelope(t)
			e["payload"] = corruptBase64(e["payload"].(string))
			return marshalIndent(t, e)
		},
	},
	{
		file: "envelope-sig-base64.json",
		why:  "a '*' in the base64 of the signature",
		want: dsse.ErrBase64, msg: "signatures[0].sig",
		make: func(t *testing.T, g *badGen) []byte {
			e := g.goodEnvelope(t)
			sig := e["signatures"].([]any)[0].(map[string]any)
			sig["sig"] = corruptBase64(sig["sig"].(string))
			return marshalIndent(t, e)
		},
	},
	{
		file: "envelope-payload-type.json",
		why:  `payloadType "application/json" instead of in-toto's, signed as such`,
		want: dsse.ErrPayloadType, msg: `"application/json"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			return marshalIndent(t, g.envelope(t, "application/json", mustJSON(t, g.statement(t, lantern.KindSource)), g.key))
		},
	},
	{
		file: "envelope-no-signatures.json",
		why:  "an empty signatures list",
		want: dsse.ErrNoSignature, msg: "no signature",
		make: func(t *testing.T, g *badGen) []byte {
			e := g.goodEnvelope(t)
			e["signatures"] = []any{}
			return marshalIndent(t, e)
		},
	},
	{
		file: "envelope-two-signatures.json",
		why:  "two signatures, both good; Lantern's envelopes have exactly one",
		want: dsse.ErrSignatureCount, msg: "2, want 1", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			return marshalIndent(t, g.envelope(t, attest.PayloadType, mustJSON(t, g.statement(t, lantern.KindSource)), g.key, g.key))
		},
	},
	{
		file: "envelope-wrong-signer.json",
		why:  "signed by a key other than key.pub",
		want: dsse.ErrSignature, msg: "does not verify",
		make: func(t *testing.T, g *badGen) []byte {
			return marshalIndent(t, g.envelope(t, attest.PayloadType, mustJSON(t, g.statement(t, lantern.KindSource)), g.other))
		},
	},
	{
		file: "statement-not-json.json",
		why:  "a payload that is not JSON",
		want: attest.ErrMalformed, msg: "statement: malformed", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			return marshalIndent(t, g.envelope(t, attest.PayloadType, []byte("this is not an in-toto statement\n"), g.key))
		},
	},
	{
		file: "statement-unknown-field.json",
		why:  `an unknown top-level field "comment" in the statement`,
		want: attest.ErrUnknownField, msg: `"comment"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["comment"] = "a statement has _type, subject, predicateType and predicate only"
			return g.signed(t, st)
		},
	},
	{
		file: "statement-type-v2.json",
		why:  "_type https://in-toto.io/Statement/v2, not v1 (nor v0.1, which cosign writes)",
		want: attest.ErrStatementType, msg: "https://in-toto.io/Statement/v2", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["_type"] = "https://in-toto.io/Statement/v2"
			return g.signed(t, st)
		},
	},
	{
		file: "statement-v0.1-subject-uri.json",
		why:  "a Statement/v0.1 whose subject has a uri, a field only v1 has",
		want: attest.ErrSubject, msg: `"uri" in a Statement/v0.1 subject`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["_type"] = attest.StatementTypeV01
			st["subject"].([]any)[0].(map[string]any)["uri"] = "https://example.org/hello-1.2.3.zip"
			return g.signed(t, st)
		},
	},
	{
		file: "statement-subject-unknown-field.json",
		why:  `an unknown field "size" inside the subject`,
		want: attest.ErrUnknownField, msg: `"size"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["subject"].([]any)[0].(map[string]any)["size"] = 1234
			return g.signed(t, st)
		},
	},
	{
		file: "statement-subject-no-sha256.json",
		why:  "a subject with a sha512 digest only",
		want: attest.ErrSubject, msg: "no sha256 digest", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			sum := sha512.Sum512([]byte("example.org/hello@v1.2.3.zip"))
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha512": hex.EncodeToString(sum[:])}
			return g.signed(t, st)
		},
	},
	{
		file: "statement-predicate-type.json",
		why:  "an unknown predicateType",
		want: attest.ErrPredicateType, msg: `"https://example.org/unknown-predicate/v1"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["predicateType"] = "https://example.org/unknown-predicate/v1"
			return g.signed(t, st)
		},
	},
	{
		file: "predicate-provenance-unknown-field.json",
		why:  `an unknown field "systemParameters" inside the SLSA provenance's buildDefinition`,
		want: attest.ErrUnknownField, msg: `"systemParameters"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindRebuild)
			bd := st["predicate"].(map[string]any)["buildDefinition"].(map[string]any)
			bd["systemParameters"] = map[string]any{"os": "linux"}
			return g.signed(t, st)
		},
	},
	{
		file: "predicate-trust-unknown-field.json",
		why:  `an unknown field "expires" in a trust predicate`,
		want: attest.ErrUnknownField, msg: `"expires"`, signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindTrust)
			st["predicate"].(map[string]any)["expires"] = "2026-03-01T12:00:00Z"
			return g.signed(t, st)
		},
	},
	{
		file: "predicate-subject-mismatch.json",
		why:  "a source claim whose subject digest is not the predicate's source.digest",
		want: attest.ErrSubject, msg: "but the predicate is about", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindSource)
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha256": lantern.DigestOf([]byte("other bytes")).Hex()}
			return g.signed(t, st)
		},
	},
	{
		file: "predicate-invalid-claim.json",
		why:  "a yank without a time",
		want: attest.ErrInvalidClaim, msg: "time: missing", signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			st := g.statement(t, lantern.KindYank)
			delete(st["predicate"].(map[string]any), "time")
			return g.signed(t, st)
		},
	},
	{
		file: "predicate-builder-mismatch.json",
		why:  "a rebuild whose runDetails.builder.id is not the key that signed it",
		want: attest.ErrBuilderMismatch, msg: "names builder " + otherBuilder.String(), signed: true,
		make: func(t *testing.T, g *badGen) []byte {
			r := g.claim(t, lantern.KindRebuild).(*lantern.Rebuild)
			r.Builder = otherBuilder
			return g.signed(t, g.statementOf(t, r))
		},
	},
	{
		file: "key-rsa.pub",
		why:  "an RSA public key",
		want: keys.ErrKeyType, msg: "RSA",
		make: func(t *testing.T, g *badGen) []byte {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			return publicPEM(t, &k.PublicKey)
		},
	},
	{
		file: "key-ed25519.pub",
		why:  "an Ed25519 public key",
		want: keys.ErrKeyType, msg: "Ed25519",
		make: func(t *testing.T, g *badGen) []byte {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return publicPEM(t, pub)
		},
	},
	{
		file: "key-p384.pub",
		why:  "an ECDSA public key on P-384, not P-256",
		want: keys.ErrKeyType, msg: "P-384",
		make: func(t *testing.T, g *badGen) []byte {
			k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return publicPEM(t, &k.PublicKey)
		},
	},
	{
		file: "key-private.pub",
		why:  "a private key file (a copy of key.key) where the public key belongs",
		want: keys.ErrKeyType, msg: `"` + keys.PrivateKeyPEMType + `"`,
		make: func(t *testing.T, g *badGen) []byte { return g.keyFile },
	},
	{
		file: "key-certificate.pub",
		why:  "an X.509 certificate of a P-256 key instead of the bare public key",
		want: keys.ErrKeyType, msg: `"CERTIFICATE"`,
		make: func(t *testing.T, g *badGen) []byte {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1),
				Subject:      pkix.Name{CommonName: "builder.example.org"},
				NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
				NotAfter:     time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, g.other.Public().Crypto(), g.other.Crypto())
			if err != nil {
				t.Fatal(err)
			}
			return pemBlock("CERTIFICATE", der)
		},
	},
	{
		file: "key-ssh.pub",
		why:  "an OpenSSH public key line, not PEM",
		want: keys.ErrNotPEM, msg: "no PEM block",
		make: func(t *testing.T, g *badGen) []byte {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			// The wire form of RFC 8709: string "ssh-ed25519", string key.
			var wire []byte
			for _, s := range [][]byte{[]byte("ssh-ed25519"), pub} {
				wire = binary.BigEndian.AppendUint32(wire, uint32(len(s)))
				wire = append(wire, s...)
			}
			return []byte("ssh-ed25519 " + base64.StdEncoding.EncodeToString(wire) + " builder@example.org\n")
		},
	},
}

// sentinelNames names the sentinels in README.md.
var sentinelNames = map[error]string{
	dsse.ErrTooLarge:          "dsse.ErrTooLarge",
	dsse.ErrMalformed:         "dsse.ErrMalformed",
	dsse.ErrPayloadType:       "dsse.ErrPayloadType",
	dsse.ErrBase64:            "dsse.ErrBase64",
	dsse.ErrNoSignature:       "dsse.ErrNoSignature",
	dsse.ErrSignatureCount:    "dsse.ErrSignatureCount",
	dsse.ErrSignature:         "dsse.ErrSignature",
	attest.ErrMalformed:       "attest.ErrMalformed",
	attest.ErrUnknownField:    "attest.ErrUnknownField",
	attest.ErrStatementType:   "attest.ErrStatementType",
	attest.ErrPredicateType:   "attest.ErrPredicateType",
	attest.ErrSubject:         "attest.ErrSubject",
	attest.ErrInvalidClaim:    "attest.ErrInvalidClaim",
	attest.ErrBuilderMismatch: "attest.ErrBuilderMismatch",
	keys.ErrKeyType:           "keys.ErrKeyType",
	keys.ErrNotPEM:            "keys.ErrNotPEM",
}

// readBadInput reads a corpus file the way Lantern reads one from outside.
func readBadInput(b []byte, file string, pub *keys.Public) error {
	if strings.HasSuffix(file, ".pub") {
		_, err := keys.ParsePublic(b)
		return err
	}
	env, err := dsse.Parse(bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, err = attest.Verify(env, pub)
	return err
}

func TestBadInputs(t *testing.T) {
	if updating() {
		writeBadInputs(t)
	}
	pubFile, err := os.ReadFile(filepath.Join(badDir, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.ParsePublic(pubFile)
	if err != nil {
		t.Fatalf("ParsePublic(key.pub) = %v", err)
	}
	for _, in := range badInputs {
		t.Run(in.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(badDir, in.file))
			if err != nil {
				t.Fatalf("%v (run go test ./attest -run TestBadInputs -update)", err)
			}
			err = readBadInput(b, in.file, pub)
			if !errors.Is(err, in.want) {
				t.Fatalf("reading %s = %v, want %s", in.file, err, sentinelNames[in.want])
			}
			if !strings.Contains(err.Error(), in.msg) {
				t.Errorf("reading %s = %q, want it to contain %q", in.file, err, in.msg)
			}
			if in.signed {
				checkSignedBy(t, b, pub)
			}
		})
	}
}

// checkSignedBy checks that every signature of the envelope b is pub's, so
// that the input is refused for what is wrong with it, not for its signature.
func checkSignedBy(t *testing.T, b []byte, pub *keys.Public) {
	t.Helper()
	env, err := dsse.Unmarshal(b)
	if err != nil {
		t.Fatalf("dsse.Unmarshal of a signed input = %v", err)
	}
	if len(env.Signatures) == 0 {
		t.Fatal("a signed input has no signatures")
	}
	for i, s := range env.Signatures {
		if err := pub.Verify(dsse.PAE(env.PayloadType, env.Payload), s.Sig); err != nil {
			t.Errorf("signatures[%d]: %v", i, err)
		}
	}
}

// TestBadInputsComplete keeps the corpus, the table and README.md in step.
func TestBadInputsComplete(t *testing.T) {
	entries, err := os.ReadDir(badDir)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, in := range badInputs {
		if rows[in.file] {
			t.Errorf("two table rows for %s", in.file)
		}
		rows[in.file] = true
		if _, ok := sentinelNames[in.want]; !ok {
			t.Errorf("%s: want %v, which sentinelNames does not name", in.file, in.want)
		}
	}
	files := map[string]bool{}
	for _, e := range entries {
		files[e.Name()] = true
		if !rows[e.Name()] && !slices.Contains(badFixtures, e.Name()) {
			t.Errorf("%s is in %s but has no row in badInputs: add one, or delete the file", e.Name(), badDir)
		}
	}
	for _, in := range badInputs {
		if !files[in.file] {
			t.Errorf("badInputs has a row for %s but %s has no such file (run go test ./attest -run TestBadInputs -update)", in.file, badDir)
		}
	}
	readme, err := os.ReadFile(filepath.Join(badDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, badReadme()) {
		t.Errorf("%s/README.md is out of step with badInputs (run go test ./attest -run TestBadInputs -update)", badDir)
	}
}

// TestBadInputHugeBody feeds dsse.Parse a 100 MB envelope as a stream: it
// must stop reading at its limit, not hold the body in memory.
func TestBadInputHugeBody(t *testing.T) {
	const size = 100 << 20
	body := &countedReader{r: io.MultiReader(
		strings.NewReader(`{"payloadType":"`+attest.PayloadType+`","payload":"`),
		io.LimitReader(repeatedByte('A'), size),
	)}
	_, err := dsse.Parse(body)
	if !errors.Is(err, dsse.ErrTooLarge) {
		t.Fatalf("Parse(100 MB body) = %v, want %s", err, sentinelNames[dsse.ErrTooLarge])
	}
	if want := strconv.Itoa(dsse.MaxEnvelopeSize); !strings.Contains(err.Error(), want) {
		t.Errorf("Parse(100 MB body) = %q, want it to name the limit %s", err, want)
	}
	if body.n > dsse.MaxEnvelopeSize+1 {
		t.Errorf("Parse(100 MB body) read %d bytes, want at most MaxEnvelopeSize+1 = %d", body.n, dsse.MaxEnvelopeSize+1)
	}
}

type countedReader struct {
	r io.Reader
	n int64
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// repeatedByte reads as an endless run of itself.
type repeatedByte byte

func (b repeatedByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// badGen makes the corpus.
type badGen struct {
	key     *keys.Private // signs the signed inputs; key.key and key.pub
	keyFile []byte        // key.key's contents
	other   *keys.Private // a stranger's key
}

// writeBadInputs rewrites the corpus and its README. It keeps key.key if
// there is one, so that only the files whose rows changed change in meaning
// (signatures differ on every run: ECDSA signing is randomised).
func writeBadInputs(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(badDir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := &badGen{}
	keyPath := filepath.Join(badDir, "key.key")
	if b, err := os.ReadFile(keyPath); err == nil {
		g.keyFile = b
		g.key = corpusKey(t)
	} else {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		g.key = k
		if g.keyFile, err = k.MarshalEncrypted(nil); err != nil {
			t.Fatal(err)
		}
	}
	other, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	g.other = other
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(badDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("key.key", g.keyFile)
	write("key.pub", g.key.Public().MarshalPEM())
	for _, in := range badInputs {
		write(in.file, in.make(t, g))
	}
	write("README.md", badReadme())
}

func badReadme() []byte {
	var b bytes.Buffer
	b.WriteString(`# Bad inputs

Inputs from outside that Lantern must refuse, each with a specific error and
never a panic. The table test in attest/badinput_test.go reads every file
here: envelopes (*.json) with dsse.Parse and attest.Verify against key.pub,
public keys (*.pub) with keys.ParsePublic. Each error must wrap the sentinel
below and contain the text that names the check. The fuzz targets of attest,
attest/dsse and attest/keys seed from these files.

The files are made by the table; change the table and run

    go test ./attest -run TestBadInputs -update

key.key (password: empty) and key.pub are the test key that signs the signed
inputs, so that each fails at its own check and not at the signature; the
test checks those signatures. The 100 MB body is not here: TestBadInputHugeBody
makes it as a stream and checks that dsse.Parse stops at its limit with
dsse.ErrTooLarge.

| File | What is wrong | Error | Message contains |
|------|---------------|-------|------------------|
`)
	for _, in := range badInputs {
		why := in.why
		if in.signed {
			why += " (signed)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` |\n", in.file, why, sentinelNames[in.want], in.msg)
	}
	return b.Bytes()
}

// claim returns the sample claim of kind k, signed for by the corpus key.
func (g *badGen) claim(t *testing.T, k lantern.Kind) lantern.Claim {
	t.Helper()
	for _, c := range everyKindOfClaim(g.key.ID()) {
		if c.Kind() == k {
			return c
		}
	}
	t.Fatalf("no sample claim of kind %s", k)
	return nil
}

// statement returns the statement of the sample claim of kind k as a JSON
// object to tamper with.
func (g *badGen) statement(t *testing.T, k lantern.Kind) map[string]any {
	t.Helper()
	return g.statementOf(t, g.claim(t, k))
}

// statementOf returns the statement of c as a JSON object.
func (g *badGen) statementOf(t *testing.T, c lantern.Claim) map[string]any {
	t.Helper()
	st, err := attest.NewStatement(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, st), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// goodEnvelope returns a good envelope of a source claim, as a JSON object to
// tamper with.
func (g *badGen) goodEnvelope(t *testing.T) map[string]any {
	t.Helper()
	return g.envelope(t, attest.PayloadType, mustJSON(t, g.statement(t, lantern.KindSource)), g.key)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope signs payload with each of signers and returns the envelope as a
// JSON object to tamper with.
func (g *badGen) envelope(t *testing.T, payloadType string, payload []byte, signers ...*keys.Private) map[string]any {
	t.Helper()
	env := &dsse.Envelope{PayloadType: payloadType, Payload: payload}
	for _, k := range signers {
		sig, err := k.Sign(dsse.PAE(payloadType, payload))
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures = append(env.Signatures, dsse.Signature{Sig: sig})
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signed returns an envelope of st signed by the corpus key.
func (g *badGen) signed(t *testing.T, st map[string]any) []byte {
	t.Helper()
	return marshalIndent(t, g.envelope(t, attest.PayloadType, mustJSON(t, st), g.key))
}

func marshalIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// corruptBase64 puts a '*', which no base64 alphabet has, into s.
func corruptBase64(s string) string {
	return s[:len(s)/2] + "*" + s[len(s)/2+1:]
}

func publicPEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock(keys.PublicKeyPEMType, der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
