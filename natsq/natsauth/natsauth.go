// Package natsauth makes a farm's NATS identities: an operator, the
// farm's account, the system account, and a user with credentials for each
// scheduler, builder and claimant, whose permissions come from the wire's
// one table of roles ([natsq.RolePermissions]).
//
// It uses NATS's decentralized authentication (JWTs signed by an operator
// and an account), not users listed in the server's configuration:
//   - a credentials file (.creds, the format the nats CLI and nats.go's
//     UserCredentials read) carries the user's permissions, signed by the
//     account, so a builder is enrolled without touching the server at all;
//   - a builder is revoked by a new account JWT that lists its user key as
//     revoked; pushed to the server (the "full" resolver, over the system
//     account), it closes the builder's connections at once and refuses its
//     credentials from then on, on every server of a cluster, with no restart
//     and no configuration reload;
//   - the same configuration serves the embedded server and an operator's own
//     nats-server ([Farm.ServerConfig]).
//
// Every permission is enforced by the server: a user whose role does not
// allow a subject gets a permissions violation, and Lantern never has to
// check what a connection did after the fact. Nothing here is anonymous: a
// server in operator mode refuses clients that present no signed user.
package natsauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
)

// The names of the accounts, as the server shows them.
const (
	AccountName       = "LANTERN"
	SystemAccountName = "SYS"
)

// Farm is a farm's NATS identities, kept in a directory: the operator's,
// the account's and the system account's seeds (0600), and the scheduler's
// and the system user's credentials.
type Farm struct {
	dir                       string
	operator, account, system nkeys.KeyPair
}

// Files of a Farm's directory.
const (
	operatorSeedFile = "operator.nk"
	accountSeedFile  = "account.nk"
	systemSeedFile   = "system.nk"
	// SchedulerCreds is the scheduler's credentials file in the directory.
	SchedulerCreds = "scheduler.creds"
	// SystemCreds is the system user's credentials file: the scheduler
	// pushes account updates (revocations) with it.
	SystemCreds = "system.creds"
)

// Open opens the farm's identities in dir, making them on first use.
func Open(dir string) (*Farm, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	f := &Farm{dir: dir}
	var err error
	if f.operator, err = loadOrMake(filepath.Join(dir, operatorSeedFile), nkeys.CreateOperator); err != nil {
		return nil, err
	}
	if f.account, err = loadOrMake(filepath.Join(dir, accountSeedFile), nkeys.CreateAccount); err != nil {
		return nil, err
	}
	if f.system, err = loadOrMake(filepath.Join(dir, systemSeedFile), nkeys.CreateAccount); err != nil {
		return nil, err
	}
	if err := f.ensureCreds(SchedulerCreds, func() ([]byte, error) {
		c, _, err := f.Creds("scheduler", natsq.RoleScheduler, lantern.Digest{})
		return c, err
	}); err != nil {
		return nil, err
	}
	if err := f.ensureCreds(SystemCreds, f.systemCreds); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir is the directory the identities are kept in.
func (f *Farm) Dir() string { return f.dir }

// SchedulerCredsFile is the path of the scheduler's credentials.
func (f *Farm) SchedulerCredsFile() string { return filepath.Join(f.dir, SchedulerCreds) }

// SystemCredsFile is the path of the system user's credentials.
func (f *Farm) SystemCredsFile() string { return filepath.Join(f.dir, SystemCreds) }

func (f *Farm) ensureCreds(name string, make func() ([]byte, error)) error {
	path := filepath.Join(f.dir, name)
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("nats identities: %w", err)
	}
	b, err := make()
	if err != nil {
		return err
	}
	return writeSecret(path, b)
}

func loadOrMake(path string, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("nats identities: %s: not an nkey seed", path)
		}
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	kp, err := create()
	if err != nil {
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	if err := writeSecret(path, append(seed, '\n')); err != nil {
		return nil, err
	}
	return kp, nil
}

// writeSecret writes b to path, readable by its owner only, never over an
// existing file.
func writeSecret(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("nats identities: %w", err)
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		os.Remove(path)
		return fmt.Errorf("nats identities: %w", err)
	}
	if err := fh.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("nats identities: %w", err)
	}
	return nil
}

func mustPublic(kp nkeys.KeyPair) string {
	pub, err := kp.PublicKey()
	if err != nil {
		panic(err) // a key pair made or parsed above always has one
	}
	return pub
}

// Account is the farm account's public key.
func (f *Farm) Account() string { return mustPublic(f.account) }

// SystemAccount is the system account's public key.
func (f *Farm) SystemAccount() string { return mustPublic(f.system) }

// OperatorJWT is the operator's self-signed JWT, which the server trusts.
func (f *Farm) OperatorJWT() (string, error) {
	oc := jwt.NewOperatorClaims(mustPublic(f.operator))
	oc.Name = "lantern"
	oc.SystemAccount = f.SystemAccount()
	s, err := oc.Encode(f.operator)
	if err != nil {
		return "", fmt.Errorf("operator jwt: %w", err)
	}
	return s, nil
}

// AccountJWT is the farm account's JWT, signed by the operator: JetStream
// enabled, and the users of revoked (user public key → when) refused.
func (f *Farm) AccountJWT(revoked map[string]time.Time) (string, error) {
	ac := jwt.NewAccountClaims(f.Account())
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1}
	// No default permissions: a user has those its JWT lists, no more.
	for user, at := range revoked {
		if !nkeys.IsValidPublicUserKey(user) {
			return "", fmt.Errorf("account jwt: revoke %q: not a NATS user public key", user)
		}
		ac.RevokeAt(user, at)
	}
	s, err := ac.Encode(f.operator)
	if err != nil {
		return "", fmt.Errorf("account jwt: %w", err)
	}
	return s, nil
}

// SystemJWT is the system account's JWT, signed by the operator.
func (f *Farm) SystemJWT() (string, error) {
	ac := jwt.NewAccountClaims(f.SystemAccount())
	ac.Name = SystemAccountName
	s, err := ac.Encode(f.operator)
	if err != nil {
		return "", fmt.Errorf("system account jwt: %w", err)
	}
	return s, nil
}

func (f *Farm) systemCreds() ([]byte, error) {
	u, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(mustPublic(u))
	uc.Name = "lantern-system"
	tok, err := uc.Encode(f.system)
	if err != nil {
		return nil, fmt.Errorf("system user jwt: %w", err)
	}
	seed, err := u.Seed()
	if err != nil {
		return nil, err
	}
	return jwt.FormatUserConfig(tok, seed)
}

// Creds makes a new user of the farm's account with role's permissions
// (for builder, with RoleBuilder) and returns its credentials file and its
// public key, by which it is revoked. name is shown in the server's
// monitoring.
func (f *Farm) Creds(name string, role natsq.Role, builder lantern.Digest) (creds []byte, user string, err error) {
	perms, err := natsq.RolePermissions(role, builder)
	if err != nil {
		return nil, "", err
	}
	u, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	user = mustPublic(u)
	uc := jwt.NewUserClaims(user)
	uc.Name = name
	uc.Pub.Allow.Add(perms.PublishAllow...)
	uc.Pub.Deny.Add(perms.PublishDeny...)
	uc.Sub.Allow.Add(perms.SubscribeAllow...)
	uc.Sub.Deny.Add(perms.SubscribeDeny...)
	uc.Tags.Add("lantern-role:" + string(role))
	if !builder.IsZero() {
		uc.Tags.Add("lantern-builder:" + builder.Hex())
	}
	tok, err := uc.Encode(f.account)
	if err != nil {
		return nil, "", fmt.Errorf("user jwt %s: %w", name, err)
	}
	seed, err := u.Seed()
	if err != nil {
		return nil, "", err
	}
	creds, err = jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, "", err
	}
	return creds, user, nil
}

// AppendCA appends the farm's CA certificate (PEM) to a credentials file,
// after the user's JWT and seed, where the NATS tools do not look: the
// worker takes it from there to verify the server ([CAFromCreds]).
func AppendCA(creds, caPEM []byte) []byte {
	var b bytes.Buffer
	b.Write(creds)
	b.WriteString("\n************************* FARM'S CA CERTIFICATE *************************\n")
	b.WriteString("The farm's NATS server presents a certificate signed by this CA.\n\n")
	b.Write(caPEM)
	return b.Bytes()
}

// CAFromCreds returns the CA certificates that AppendCA put in a
// credentials file, or nil.
func CAFromCreds(creds []byte) []byte {
	i := bytes.Index(creds, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		return nil
	}
	return creds[i:]
}

// ServerConfig is what the server configuration of a farm holds besides
// its identities.
type ServerConfig struct {
	// Name is the server's name.
	Name string
	// Listen is the client address, host:port.
	Listen string
	// StoreDir is JetStream's directory.
	StoreDir string
	// ResolverDir is where the server keeps the account JWTs it was sent.
	ResolverDir string
	// Revoked are the revoked users (user public key → when).
	Revoked map[string]time.Time
	// TLSCert and TLSKey, if set, are the server's certificate and key
	// files: clients must then speak TLS.
	TLSCert, TLSKey string
}

// ServerConfig returns a nats-server configuration file for the farm: the
// operator, the system account, a "full" resolver (which takes revocations
// pushed by the scheduler) preloaded with both accounts, and JetStream.
func (f *Farm) ServerConfig(c ServerConfig) (string, error) {
	op, err := f.OperatorJWT()
	if err != nil {
		return "", err
	}
	acct, err := f.AccountJWT(c.Revoked)
	if err != nil {
		return "", err
	}
	sys, err := f.SystemJWT()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# NATS server configuration of a Lantern farm, made by Lantern.\n")
	fmt.Fprintf(&b, "# Nobody connects without credentials from this farm ('lantern builder add'),\n")
	fmt.Fprintf(&b, "# and each user may do only what its role allows (the server enforces it):\n#\n")
	for _, line := range strings.Split(strings.TrimRight(natsq.PermissionsTable(), "\n"), "\n") {
		fmt.Fprintf(&b, "#   %s\n", line)
	}
	b.WriteString("\n")
	if c.Name != "" {
		fmt.Fprintf(&b, "server_name: %q\n", c.Name)
	}
	if c.Listen != "" {
		fmt.Fprintf(&b, "listen: %q\n", c.Listen)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", c.StoreDir)
	if c.TLSCert != "" {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n}\n", c.TLSCert, c.TLSKey)
	}
	fmt.Fprintf(&b, "operator: %s\n", op)
	fmt.Fprintf(&b, "system_account: %s\n", f.SystemAccount())
	fmt.Fprintf(&b, "resolver {\n  type: full\n  dir: %q\n  allow_delete: false\n  interval: \"2m\"\n  timeout: \"5s\"\n}\n", c.ResolverDir)
	fmt.Fprintf(&b, "resolver_preload {\n")
	// Sorted: the same farm gives the same file but for the JWTs' times.
	pre := map[string]string{f.SystemAccount(): sys, f.Account(): acct}
	ids := []string{f.SystemAccount(), f.Account()}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s: %s\n", id, pre[id])
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// claimUpdateResponse is the server's answer to an account update.
type claimUpdateResponse struct {
	Data *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// Push sends the farm account's JWT, with revoked, to the server that sys
// (a connection with the system user's credentials) is connected to, which
// shares it with its cluster. The server closes the connections of users
// revoked by it, and refuses them from then on.
func (f *Farm) Push(ctx context.Context, sys *nats.Conn, revoked map[string]time.Time) error {
	tok, err := f.AccountJWT(revoked)
	if err != nil {
		return err
	}
	msg, err := sys.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(tok))
	if err != nil {
		return fmt.Errorf("push account jwt: %w", err)
	}
	var r claimUpdateResponse
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("push account jwt: the server answered %q", truncate(msg.Data))
	}
	if r.Error != nil {
		return fmt.Errorf("push account jwt: the server refused it (%d): %s", r.Error.Code, r.Error.Description)
	}
	if r.Data == nil || r.Data.Code != 200 {
		return fmt.Errorf("push account jwt: the server answered %q", truncate(msg.Data))
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
