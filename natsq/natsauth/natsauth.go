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
// Each builder is a user of an account of its own, and claimants of one
// for them all; none of those accounts has JetStream. The farm's account
// (LANTERN, where the streams are and the scheduler's user is) exports the
// few JetStream API calls, ack subjects and subjects that members use, and
// a builder's account imports only those that are its own: its consumer,
// its jobs' acks, its results subject, its bucket. NATS does not check a
// request's reply subject against the sender's permissions, so within one
// account a builder could aim the server's answers at anything there — the
// JetStream API (a Direct Get's answer carries headers and a body the
// builder chose), another builder's ack subjects (the empty answer to an
// ack acks), another builder's bucket. In an account of its own, whatever
// it aims at is its own.
//
// Every permission is enforced by the server: a user whose role does not
// allow a subject gets a permissions violation, and Lantern never has to
// check what a connection did after the fact. Nothing here is anonymous: a
// server in operator mode refuses clients that present no signed user.
package natsauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	AccountName          = "LANTERN"
	ClaimantsAccountName = "CLAIMANTS"
	SystemAccountName    = "SYS"
)

// Farm is a farm's NATS identities, kept in a directory: the operator's,
// the account's and the system account's seeds (0600), and the scheduler's
// and the system user's credentials.
type Farm struct {
	dir                                  string
	operator, account, claimants, system nkeys.KeyPair
}

// Files of a Farm's directory.
const (
	operatorSeedFile  = "operator.nk"
	accountSeedFile   = "account.nk"
	claimantsSeedFile = "claimants.nk"
	// buildersDir holds each builder's account seed, <key id hex>.nk.
	buildersDir    = "builders"
	systemSeedFile = "system.nk"
	// SchedulerCreds is the scheduler's credentials file in the directory.
	SchedulerCreds = "scheduler.creds"
	// SystemCreds is the system user's credentials file: the scheduler
	// pushes account updates (revocations) with it.
	SystemCreds = "system.creds"
	// routeSecretFile holds the password the servers of a cluster route
	// to each other with.
	routeSecretFile = "route.secret"
	// RouteUser is the user name of the servers of a farm's cluster
	// routing to each other.
	RouteUser = "lantern-route"
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
	if f.claimants, err = loadOrMake(filepath.Join(dir, claimantsSeedFile), nkeys.CreateAccount); err != nil {
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

// RoutePassword returns the password the servers of the farm's NATS
// cluster route to each other with, made on first use (DIR/route.secret,
// 0600): every server of the cluster runs on a copy of the same directory,
// and a server without it cannot join as a route.
func (f *Farm) RoutePassword() (string, error) {
	path := filepath.Join(f.dir, routeSecretFile)
	if err := f.ensureCreds(routeSecretFile, func() ([]byte, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(b) + "\n"), nil
	}); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nats identities: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 32 || strings.ContainsAny(pw, "\"'\\ \t@:/") {
		return "", fmt.Errorf("nats identities: %s: want a secret of 32 or more characters without quotes, spaces, '@', ':' or '/'; remove it to have a new one made (on every server of the cluster)", path)
	}
	return pw, nil
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

// ClaimantsAccount is the public key of the claimants' account.
func (f *Farm) ClaimantsAccount() string { return mustPublic(f.claimants) }

// builderAccount returns builder's account key pair, made on first use.
func (f *Farm) builderAccount(builder lantern.Digest) (nkeys.KeyPair, error) {
	if builder.IsZero() {
		return nil, errors.New("builder account: no builder key id")
	}
	dir := filepath.Join(f.dir, buildersDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	return loadOrMake(filepath.Join(dir, builder.Hex()+".nk"), nkeys.CreateAccount)
}

// builders lists the builders that have an account.
func (f *Farm) builders() ([]lantern.Digest, error) {
	files, err := filepath.Glob(filepath.Join(f.dir, buildersDir, "*.nk"))
	if err != nil {
		return nil, err
	}
	var out []lantern.Digest
	for _, file := range files {
		d, err := lantern.DigestFromHex(strings.TrimSuffix(filepath.Base(file), ".nk"))
		if err != nil {
			return nil, fmt.Errorf("nats identities: %s: not named by a builder's key id", file)
		}
		out = append(out, d)
	}
	return out, nil
}

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

// exports are what the farm's account exports to builders' and claimants'
// accounts: each a service (a request, and its answer routed back to the
// requester). An importing account takes only its own subjects of these. A
// member reaches the JetStream API under natsq.MembersAPIPrefix: $JS.API
// itself, in an account without JetStream, is answered "JetStream not
// enabled".
var exports = []struct {
	subject string
	stream  bool // answered by more than one message (a pull's jobs)
}{
	{"$JS.API.CONSUMER.INFO." + natsq.StreamJobs + ".*", false},
	{"$JS.API.CONSUMER.MSG.NEXT." + natsq.StreamJobs + ".*", true},
	{"$JS.API.STREAM.INFO.*", false},
	{"$JS.API.STREAM.MSG.GET.*", false},
	{"$JS.ACK." + natsq.StreamJobs + ".>", false},
	{natsq.SubjectResults + ".*", false},
	{natsq.SubjectBuilding + ".*", false},
	{natsq.SubjectClaims, false},
	{"$O.*.>", false},
}

// builderImports are the subjects builder's account imports from the
// farm's: those of its own consumer, jobs, results, building subject and
// bucket, exactly.
func builderImports(builder lantern.Digest) []string {
	cons := natsq.ConsumerName(builder)
	bucket := natsq.BuilderBucket(builder)
	result, _ := natsq.ResultSubject(builder)
	building, _ := natsq.BuildingSubject(builder)
	return []string{
		"$JS.API.CONSUMER.INFO." + natsq.StreamJobs + "." + cons,
		"$JS.API.CONSUMER.MSG.NEXT." + natsq.StreamJobs + "." + cons,
		"$JS.API.STREAM.INFO.OBJ_" + bucket,
		"$JS.API.STREAM.MSG.GET.OBJ_" + bucket,
		"$JS.ACK." + natsq.StreamJobs + "." + cons + ".>",
		result,
		building,
		"$O." + bucket + ".>",
	}
}

// memberSubject is where a member publishes what the farm's account gets
// on subject.
func memberSubject(subject string) string {
	if rest, ok := strings.CutPrefix(subject, "$JS.API."); ok {
		return natsq.MembersAPIPrefix + "." + rest
	}
	return subject
}

// AccountJWT is the farm account's JWT, signed by the operator: JetStream
// enabled, and its services to members exported.
func (f *Farm) AccountJWT() (string, error) {
	ac := jwt.NewAccountClaims(f.Account())
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1}
	for _, svc := range exports {
		e := &jwt.Export{Name: svc.subject, Subject: jwt.Subject(svc.subject), Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton}
		if svc.stream {
			e.ResponseType = jwt.ResponseTypeStream
			// A pull waits up to a minute for its jobs.
			e.ResponseThreshold = 2 * time.Minute
		}
		ac.Exports.Add(e)
	}
	s, err := ac.Encode(f.operator)
	if err != nil {
		return "", fmt.Errorf("account jwt: %w", err)
	}
	return s, nil
}

// memberJWT is the JWT of a member account, signed by the operator: the
// subjects imported from the farm's account, no JetStream of its own, and
// the users of revoked (user public key → when) refused.
func (f *Farm) memberJWT(kp nkeys.KeyPair, name string, imports []string, revoked map[string]time.Time) (string, error) {
	ac := jwt.NewAccountClaims(mustPublic(kp))
	ac.Name = name
	// One builder, however many workers it runs, does not get to hold the
	// server's connections and subscriptions.
	ac.Limits.Conn = MaxMemberConnections
	ac.Limits.Subs = 64 * MaxMemberConnections
	for _, subj := range imports {
		ac.Imports.Add(&jwt.Import{Name: subj, Subject: jwt.Subject(subj), LocalSubject: jwt.RenamingSubject(memberSubject(subj)), Account: f.Account(), Type: jwt.Service})
	}
	for user := range revoked {
		if !nkeys.IsValidPublicUserKey(user) {
			return "", fmt.Errorf("account jwt %s: revoke %q: not a NATS user public key", name, user)
		}
		// Every JWT of the user, whenever issued: each user key is of one
		// credentials file only, and a revocation must not depend on the
		// clocks of the machines that issued and revoked it.
		ac.RevokeAt(user, revokeAll)
	}
	s, err := ac.Encode(f.operator)
	if err != nil {
		return "", fmt.Errorf("account jwt %s: %w", name, err)
	}
	return s, nil
}

// MaxMemberConnections is how many connections a builder's account (or the
// claimants') may have open at once.
const MaxMemberConnections = 256

// revokeAll is the time of a revocation of every JWT of a user.
var revokeAll = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// revokedFile keeps every user ever revoked: a list that only grows, so
// that a registry file lost or restored from an old backup cannot give a
// revoked builder its credentials back.
const revokedFile = "revoked.json"

// Revoked returns revoked merged with every user revoked before, and
// records the merge: revocations are never undone.
func (f *Farm) Revoked(revoked map[string]time.Time) (map[string]time.Time, error) {
	path := filepath.Join(f.dir, revokedFile)
	all := map[string]time.Time{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &all); err != nil {
			return nil, fmt.Errorf("nats identities: %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("nats identities: %w", err)
	}
	grew := false
	for u, t := range revoked {
		if _, ok := all[u]; !ok {
			all[u], grew = t, true
		}
	}
	if grew {
		b, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return nil, err
		}
		tmp := path + ".tmp"
		os.Remove(tmp)
		if err := writeSecret(tmp, b); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("nats identities: %w", err)
		}
	}
	return all, nil
}

// accountJWTs returns every account's JWT but the system's, by account
// public key: the farm's, the claimants', and each builder's, with
// revoked and every user revoked before.
func (f *Farm) accountJWTs(revoked map[string]time.Time) (map[string]string, error) {
	revoked, err := f.Revoked(revoked)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	acct, err := f.AccountJWT()
	if err != nil {
		return nil, err
	}
	out[f.Account()] = acct
	if out[f.ClaimantsAccount()], err = f.memberJWT(f.claimants, ClaimantsAccountName, []string{natsq.SubjectClaims}, revoked); err != nil {
		return nil, err
	}
	builders, err := f.builders()
	if err != nil {
		return nil, err
	}
	for _, b := range builders {
		kp, err := f.builderAccount(b)
		if err != nil {
			return nil, err
		}
		if out[mustPublic(kp)], err = f.memberJWT(kp, "BUILDER_"+b.Hex()[:16], builderImports(b), revoked); err != nil {
			return nil, err
		}
	}
	return out, nil
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
	// The scheduler is of the farm's account; each builder of its own;
	// claimants of theirs.
	var issuer nkeys.KeyPair
	switch role {
	case natsq.RoleScheduler:
		issuer = f.account
	case natsq.RoleClaimant:
		issuer = f.claimants
	default:
		if issuer, err = f.builderAccount(builder); err != nil {
			return nil, "", err
		}
	}
	tok, err := uc.Encode(issuer)
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
// worker takes it from there to verify the server (natsq.Connect).
func AppendCA(creds, caPEM []byte) []byte {
	var b bytes.Buffer
	b.Write(creds)
	b.WriteString("\n************************* FARM'S CA CERTIFICATE *************************\n")
	b.WriteString("The farm's NATS server presents a certificate signed by this CA.\n\n")
	b.Write(caPEM)
	return b.Bytes()
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
	// Cluster, if set, is the address (host:port) this server listens on
	// for the routes of the other servers of its cluster; JetStream is
	// then clustered. Routes authenticate with RoutePassword.
	Cluster string
	// ClusterName names the cluster; default "lantern".
	ClusterName string
	// Routes are the URLs (nats://host:port) of the other servers of the
	// cluster; the route password is put in them.
	Routes []string
	// ClusterCA, if set, is the CA that every server's certificate is
	// signed by: routes then speak TLS with TLSCert and TLSKey, and each
	// end verifies the other's certificate.
	ClusterCA string
}

// ServerConfig returns a nats-server configuration file for the farm: the
// operator, the system account, a "full" resolver (which takes revocations
// pushed by the scheduler) preloaded with both accounts, and JetStream.
func (f *Farm) ServerConfig(c ServerConfig) (string, error) {
	op, err := f.OperatorJWT()
	if err != nil {
		return "", err
	}
	accounts, err := f.accountJWTs(c.Revoked)
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
	if c.Cluster != "" {
		if err := f.clusterConfig(&b, c); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(&b, "operator: %s\n", op)
	fmt.Fprintf(&b, "system_account: %s\n", f.SystemAccount())
	fmt.Fprintf(&b, "resolver {\n  type: full\n  dir: %q\n  allow_delete: false\n  interval: \"2m\"\n  timeout: \"1s\"\n}\n", c.ResolverDir)
	fmt.Fprintf(&b, "resolver_preload {\n")
	// Sorted: the same farm gives the same file but for the JWTs' times.
	pre := map[string]string{f.SystemAccount(): sys}
	maps.Copy(pre, accounts)
	ids := slices.Sorted(maps.Keys(pre))
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s: %s\n", id, pre[id])
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// clusterConfig writes the cluster block of c: routes in and out
// authenticated with the farm's route password, over TLS with mutual
// verification when c.ClusterCA is set.
func (f *Farm) clusterConfig(b *strings.Builder, c ServerConfig) error {
	pw, err := f.RoutePassword()
	if err != nil {
		return err
	}
	if c.ClusterCA != "" && (c.TLSCert == "" || c.TLSKey == "") {
		return errors.New("server config: routes over TLS need the server's certificate and key as well as the cluster's CA")
	}
	name := c.ClusterName
	if name == "" {
		name = "lantern"
	}
	fmt.Fprintf(b, "cluster {\n  name: %q\n  listen: %q\n", name, c.Cluster)
	fmt.Fprintf(b, "  authorization {\n    user: %q\n    password: %q\n    timeout: 2\n  }\n", RouteUser, pw)
	if len(c.Routes) > 0 {
		b.WriteString("  routes: [\n")
		for _, r := range c.Routes {
			u, err := RouteURL(r, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(b, "    %q\n", u)
		}
		b.WriteString("  ]\n")
	}
	if c.ClusterCA != "" {
		fmt.Fprintf(b, "  tls {\n    cert_file: %q\n    key_file: %q\n    ca_file: %q\n    verify: true\n    timeout: 5\n  }\n", c.TLSCert, c.TLSKey, c.ClusterCA)
	}
	b.WriteString("}\n")
	return nil
}

// RouteURL returns route (nats://host:port, or host:port) with the farm's
// route user and password pw in it. A URL that carries a user of its own
// is refused: the farm's servers route with the farm's secret only.
func RouteURL(route, pw string) (string, error) {
	r := strings.TrimSpace(route)
	if !strings.Contains(r, "://") {
		r = "nats://" + r
	}
	u, err := url.Parse(r)
	if err != nil {
		return "", fmt.Errorf("route %q: %w", route, err)
	}
	if u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls" {
		return "", fmt.Errorf("route %q: want nats://HOST:PORT", route)
	}
	if u.User != nil {
		return "", fmt.Errorf("route %q: a route carries no user or password; the farm's servers route with the secret in its NATS identities (%s)", u.Redacted(), routeSecretFile)
	}
	if u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("route %q: want nats://HOST:PORT", route)
	}
	u.Scheme = "nats"
	u.Path = ""
	u.User = url.UserPassword(RouteUser, pw)
	return u.String(), nil
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

// requestTimeout bounds how long Push waits for the server's answer to one
// request. The system user's connection reconnects for ever, and a request
// sent as the server went away is answered by nobody: without a bound, the
// push would wait for ever, and with it every later revocation.
var requestTimeout = 30 * time.Second

// Push sends the farm's accounts' JWTs, with revoked, to the
// server that sys (a connection with the system user's credentials) is
// connected to, which shares them with its cluster. The server closes the
// connections of users revoked by it, and refuses them from then on.
//
// An account the server already has, with the same claims, is not sent
// again: a JWT is signed anew each time, and one that differs from the
// server's, if only in when it was signed, makes the server rebuild the
// account. Rebuilding the farm's account drops the routes back of the
// requests that came in through its exports, and a worker's pull waiting
// for a job is one: its next job would be delivered to nowhere, and come
// back only after the ack wait.
func (f *Farm) Push(ctx context.Context, sys *nats.Conn, revoked map[string]time.Time) error {
	accounts, err := f.accountJWTs(revoked)
	if err != nil {
		return err
	}
	// The farm's first: the others import from it.
	ids := []string{f.Account()}
	for id := range accounts {
		if id != f.Account() {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if serverHas(ctx, sys, id, accounts[id]) {
			continue
		}
		if err := push(ctx, sys, accounts[id]); err != nil {
			return err
		}
	}
	return nil
}

// serverHas reports whether the server that sys is connected to has
// account id with the claims of tok, signed whenever. When it cannot tell,
// it reports false: the account is pushed.
func serverHas(ctx context.Context, sys *nats.Conn, id, tok string) bool {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	msg, err := sys.RequestWithContext(ctx, "$SYS.REQ.ACCOUNT."+id+".CLAIMS.LOOKUP", nil)
	if err != nil || len(msg.Data) == 0 {
		return false // unknown to the server (an empty answer), or no answer
	}
	have, err := jwt.DecodeAccountClaims(string(msg.Data))
	if err != nil {
		return false
	}
	want, err := jwt.DecodeAccountClaims(tok)
	if err != nil {
		return false
	}
	return sameClaims(have, want)
}

// sameClaims reports whether a and b claim the same, whenever they were
// signed.
func sameClaims(a, b *jwt.AccountClaims) bool {
	unsigned := func(c *jwt.AccountClaims) ([]byte, error) {
		u := *c
		u.IssuedAt, u.ID = 0, "" // the ID is a hash of the claims with IssuedAt
		return json.Marshal(u)
	}
	ja, err := unsigned(a)
	if err != nil {
		return false
	}
	jb, err := unsigned(b)
	return err == nil && bytes.Equal(ja, jb)
}

func push(ctx context.Context, sys *nats.Conn, tok string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
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
