package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/scheduler"
)

// The farm's builders are files in DATA/builders, which `lantern builder`
// writes and a running scheduler reads every registryPoll:
//
//	DATA/builders/NAME.pub            the builder's signing key
//	DATA/builders/NAME.json           its enrollment (builderEntry)
//	DATA/builders/revoked/NAME.pub    a removed builder's key
//	DATA/builders/revoked/NAME.json   its enrollment, with when it was revoked
//
// A .pub without a .json (put there by hand, as before enrollment existed)
// is a builder too, with no NATS user of its own to revoke.
const registryPoll = time.Second

// builderEntry is one enrollment.
type builderEntry struct {
	Name  string         `json:"name"`
	KeyID lantern.Digest `json:"keyId"`
	// NATSUsers are the public keys of the NATS users whose credentials
	// were issued to the builder: revoking it revokes them all.
	NATSUsers []string  `json:"natsUsers"`
	Added     time.Time `json:"added"`
	Revoked   time.Time `json:"revoked,omitzero"`

	key *keys.Public
}

type registry struct{ dir string }

func builderRegistry(data string) registry { return registry{dir: filepath.Join(data, "builders")} }

var builderNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func checkBuilderName(name string) error {
	if !builderNameRE.MatchString(name) {
		return usagef("builder name %q: use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// read returns every builder, active and revoked, by name; a file it
// cannot read is an error.
func (r registry) read() ([]builderEntry, error) {
	out, problems, err := r.readAll()
	if err == nil && len(problems) > 0 {
		err = errors.New(problems[0])
	}
	return out, err
}

// readAll is read that skips, and reports in problems, the builders whose
// files it cannot read: the running scheduler goes on with the others (a
// builder it cannot read is no builder of the farm, and its revoked
// credentials stay revoked: the farm's NATS identities keep every revoked
// user).
func (r registry) readAll() (_ []builderEntry, problems []string, _ error) {
	var out []builderEntry
	for _, sub := range []string{r.dir, filepath.Join(r.dir, "revoked")} {
		pubs, err := filepath.Glob(filepath.Join(sub, "*.pub"))
		if err != nil {
			return nil, nil, err
		}
		for _, p := range pubs {
			k, err := loadPublic(p)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			name := strings.TrimSuffix(filepath.Base(p), ".pub")
			name, _, _ = strings.Cut(name, "@") // revoked/NAME@TIME.pub
			e := builderEntry{Name: name, KeyID: k.ID(), key: k}
			b, err := os.ReadFile(strings.TrimSuffix(p, ".pub") + ".json")
			switch {
			case err == nil:
				if err := json.Unmarshal(b, &e); err != nil {
					problems = append(problems, fmt.Sprintf("builder %s: %s: %v", name, strings.TrimSuffix(p, ".pub")+".json", err))
					continue
				}
				if e.KeyID != k.ID() {
					problems = append(problems, fmt.Sprintf("builder %s: its .json names key %s, its .pub is %s", name, e.KeyID, k.ID()))
					continue
				}
			case !errors.Is(err, fs.ErrNotExist):
				problems = append(problems, err.Error())
				continue
			}
			if sub != r.dir && e.Revoked.IsZero() {
				// In revoked/ without a time: revoked since the file's.
				if fi, err := os.Stat(p); err == nil {
					e.Revoked = fi.ModTime().UTC()
				}
			}
			if sub == r.dir {
				e.Revoked = time.Time{}
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, problems, nil
}

// enrolled turns entries into the scheduler's view, and the NATS users to
// revoke.
func enrolled(entries []builderEntry) ([]scheduler.Enrolled, map[string]time.Time) {
	var es []scheduler.Enrolled
	revoked := map[string]time.Time{}
	active := map[lantern.Digest]bool{}
	for _, e := range entries {
		if e.Revoked.IsZero() {
			active[e.KeyID] = true
		}
	}
	// One view per key: its enrollment if it has one, else its latest
	// revocation.
	latest := map[lantern.Digest]builderEntry{}
	for _, e := range entries {
		if !e.Revoked.IsZero() {
			for _, u := range e.NATSUsers {
				if t, ok := revoked[u]; !ok || e.Revoked.Before(t) {
					revoked[u] = e.Revoked
				}
			}
			if active[e.KeyID] {
				continue // enrolled again since
			}
		}
		if have, ok := latest[e.KeyID]; ok && (have.Revoked.IsZero() || have.Revoked.After(e.Revoked)) {
			continue
		}
		latest[e.KeyID] = e
	}
	for _, e := range latest {
		es = append(es, scheduler.Enrolled{Key: e.key, Name: e.Name, Revoked: e.Revoked})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	return es, revoked
}

func (r registry) find(name string) (*builderEntry, error) {
	all, err := r.read()
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name && all[i].Revoked.IsZero() {
			return &all[i], nil
		}
	}
	return nil, nil
}

func (r registry) writeEntry(dir string, e builderEntry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, e.Name+".json"), append(b, '\n'), 0o644)
}

// replaceFile writes data to path through a temporary file and a rename:
// a scheduler reading the registry sees the old file or the new one.
func replaceFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	// A stale or planted temporary file (a symlink) is removed, not
	// followed; the new one has perm, whatever was there.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// enroll adds a builder: its key and entry in the registry, and new NATS
// credentials for it, which it returns. A builder already enrolled under
// name with the same key gets new credentials (added to its entry).
func enroll(data, name string, k *keys.Public, ca []byte) ([]byte, error) {
	r := builderRegistry(data)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	all, err := r.read()
	if err != nil {
		return nil, err
	}
	var entry *builderEntry
	for i, e := range all {
		if !e.Revoked.IsZero() {
			continue
		}
		switch {
		case e.Name == name && e.KeyID != k.ID():
			return nil, fmt.Errorf("a builder %q is enrolled already, with key %s; pick another name, or remove it first (lantern builder remove %s)", name, e.KeyID, name)
		case e.Name != name && e.KeyID == k.ID():
			return nil, fmt.Errorf("key %s is enrolled already, as builder %q", k.ID(), e.Name)
		case e.Name == name:
			entry = &all[i]
		}
	}
	auth, err := natsauth.Open(filepath.Join(data, "nats-auth"))
	if err != nil {
		return nil, err
	}
	creds, user, err := auth.Creds(name, natsq.RoleBuilder, k.ID())
	if err != nil {
		return nil, err
	}
	if ca != nil {
		creds = natsauth.AppendCA(creds, ca)
	}
	if entry == nil {
		entry = &builderEntry{Name: name, KeyID: k.ID(), Added: time.Now().UTC()}
		if err := replaceFile(filepath.Join(r.dir, name+".pub"), k.MarshalPEM(), 0o644); err != nil {
			return nil, err
		}
	}
	entry.NATSUsers = append(entry.NATSUsers, user)
	if err := r.writeEntry(r.dir, *entry); err != nil {
		return nil, err
	}
	return creds, nil
}

// revoke moves a builder to revoked/, stamped now.
func revoke(data, name string) (*builderEntry, error) {
	r := builderRegistry(data)
	e, err := r.find(name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("no builder %q is enrolled; see lantern builder list", name)
	}
	rdir := filepath.Join(r.dir, "revoked")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	e.Revoked = time.Now().UTC()
	if e.Added.IsZero() {
		e.Added = e.Revoked
	}
	// Each revocation has files of its own (a name enrolled again and
	// removed again must not overwrite the first revocation's users); the
	// entry keeps the name. Stamped and moved before the key goes: a reader
	// sees the builder active and revoked at once for a moment, and then
	// the revocation holds; never neither.
	base := fmt.Sprintf("%s@%d", name, e.Revoked.UnixNano())
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := replaceFile(filepath.Join(rdir, base+".json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(r.dir, name+".pub"), filepath.Join(rdir, base+".pub")); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(r.dir, name+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return e, nil
}

// farmCA is the CA of the embedded server's certificate, when it made one.
func farmCA(data string) []byte {
	b, err := os.ReadFile(filepath.Join(data, "nats", "tls", "ca.pem"))
	if err != nil {
		return nil
	}
	return b
}

func builderAddCommand() command {
	return command{
		name:    "builder add",
		args:    "NAME KEY.pub",
		summary: "enroll a builder: register its key and write NATS credentials for it",
		long: `Builder add enrolls a builder in the farm whose data directory is --data: it
registers the builder's public signing key (the KEY.pub that 'lantern keygen'
wrote for the volunteer) under NAME, and writes NAME.creds, a standard NATS
credentials file (the nats CLI and nats.go read it), for the volunteer's
workers. The credentials let that builder do what a builder may on the farm's
NATS — take its own jobs, publish its own results, upload to its own bucket —
and nothing else; the NATS server enforces it. When the farm's NATS serves TLS
with a CA of its own, the CA is in the file too.

A running scheduler picks the builder up within a second or two: no restart.
Give NAME.creds to the volunteer over a private channel: it is a secret.
Enrolling the same NAME and key again writes new credentials; the old ones stay
valid until the builder is removed.

Example:
  lantern builder add alice alice.pub --data /var/lib/lantern
  # then, on alice's machine:
  lantern worker --nats tls://farm.example.org:4222 --creds alice.creds --key alice.key --claim-key maintainer.pub`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "the farm's data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			out := f.String("out", "", "`FILE` to write the credentials to (default NAME.creds in the current directory)")
			ca := f.String("nats-ca", "", "a CA certificate `FILE` to put in the credentials, for an external NATS server's TLS (default: the embedded server's own CA, if it made one)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 2 {
					return usagef("builder add takes NAME and KEY.pub, got %d arguments", len(args))
				}
				name := args[0]
				if err := checkBuilderName(name); err != nil {
					return err
				}
				k, err := loadPublic(args[1])
				if err != nil {
					return err
				}
				dest := *out
				if dest == "" {
					dest = name + ".creds"
				}
				if _, err := os.Stat(dest); err == nil {
					return fmt.Errorf("%s exists; it is left alone: move it away, or pass --out FILE", dest)
				}
				caPEM := farmCA(*data)
				if *ca != "" {
					if caPEM, err = os.ReadFile(*ca); err != nil {
						return fmt.Errorf("--nats-ca: %w", err)
					}
				}
				creds, err := enroll(*data, name, k, caPEM)
				if err != nil {
					return err
				}
				if err := writeFile(dest, creds, 0o600); err != nil {
					return fmt.Errorf("write credentials: %w", err)
				}
				fmt.Fprintf(io.out, "enrolled builder %s (key %s)\ncredentials: %s (a secret: hand it to the builder privately)\nits workers run: lantern worker --nats URL --creds %s --key %s.key --claim-key AUTHOR.pub\n",
					name, k.ID(), dest, filepath.Base(dest), name)
				return nil
			}
		},
	}
}

func builderRemoveCommand() command {
	return command{
		name:    "builder remove",
		args:    "NAME",
		summary: "revoke a builder: its NATS credentials, its job consumer, its new results",
		long: `Builder remove revokes the builder enrolled as NAME. A running scheduler,
within a second or two: pushes the revocation to the farm's NATS, which closes
the builder's connections and refuses its credentials from then on; deletes its
job consumer; and refuses every result of it that arrives from then on. Its
past attestations stay, as signed history, shown as from a revoked builder.

Example:
  lantern builder remove alice --data /var/lib/lantern`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "the farm's data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("builder remove takes NAME, got %d arguments", len(args))
				}
				if err := checkBuilderName(args[0]); err != nil {
					return err
				}
				e, err := revoke(*data, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(io.out, "revoked builder %s (key %s) at %s\n", e.Name, e.KeyID, e.Revoked.Format(time.RFC3339))
				return nil
			}
		},
	}
}

func builderListCommand() command {
	return command{
		name:    "builder list",
		summary: "list the farm's builders, enrolled and revoked",
		long: `Builder list prints the builders of the farm whose data directory is --data.

Example:
  lantern builder list --data /var/lib/lantern`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "the farm's data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			asJSON := f.Bool("json", false, "print JSON")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("builder list takes no arguments, got %q", args)
				}
				all, err := builderRegistry(*data).read()
				if err != nil {
					return err
				}
				if *asJSON {
					if all == nil {
						all = []builderEntry{}
					}
					enc := json.NewEncoder(io.out)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"builders": all})
				}
				if len(all) == 0 {
					fmt.Fprintf(io.out, "no builders in %s; enroll one with lantern builder add NAME KEY.pub\n", *data)
					return nil
				}
				tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKEY ID\tSTATE\tADDED\tREVOKED")
				for _, e := range all {
					state, rev := "enrolled", "-"
					if !e.Revoked.IsZero() {
						state, rev = "revoked", e.Revoked.Format(time.RFC3339)
					}
					added := "-"
					if !e.Added.IsZero() {
						added = e.Added.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.KeyID.Short(), state, added, rev)
				}
				return tw.Flush()
			}
		},
	}
}
