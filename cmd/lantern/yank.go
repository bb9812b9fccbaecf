package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
)

func claimYankCommand() command {
	return command{
		name:    "claim yank",
		summary: "sign a yank: NAME@VERSION is NOT source S",
		long: `Claim yank writes a signed yank: "NAME@VERSION is NOT the source archive with
this sha256", for an author to take back a release (a compromised archive, a
mistake). Clients that trust the author for NAME ('lantern verify --author
NAME=KEY.pub') then refuse every artefact rebuilt from that source: verify exits
3, contradicted. Publish the yank beside the release, or hand it to the clients'
evidence (lantern verify --evidence).

Example:
  lantern claim yank --key maintainer.key --source example.org/hello@v1.2.0 \
    --source-digest sha256:2c26... --reason "release archive replaced upstream" -o hello-1.2.0.yank.json`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			key := f.String("key", os.Getenv("LANTERN_KEY"), "private key `FILE` (default $LANTERN_KEY)")
			var src sourceFlags
			src.register(f)
			reason := f.String("reason", "", "why the source is taken back, in a `SENTENCE`")
			out := f.String("o", "", "write the envelope to `FILE` (default standard output)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("claim yank takes no arguments, got %q", args)
				}
				s, err := src.parse()
				if err != nil {
					return err
				}
				y := &lantern.Yank{Source: s, Reason: *reason, Time: time.Now().UTC().Truncate(time.Second)}
				if err := y.Validate(); err != nil {
					return usagef("%v", err)
				}
				k, err := loadPrivate(io, *key)
				if err != nil {
					return err
				}
				return signAndWrite(io, y, k, *out, "")
			}
		},
	}
}

func claimRevokeCommand() command {
	return command{
		name:    "claim revoke",
		args:    "KEY.pub|sha256:<key id>",
		summary: "sign a revocation: a key is no longer a trusted builder, or an author of NAME",
		long: `Claim revoke writes a signed revocation of a key: "KEY is no longer a trusted
builder" or, with --author NAME, "KEY is no longer an author of NAME". Sign it
with the revoked key itself (a key may always revoke itself, as when it is lost
or leaked) or with an author's key. Clients ('lantern verify') honour a
revocation signed by the revoked key or by an author in their policy: the
revoked key's agreement and source claims no longer count, whatever their
date. A revocation hides nothing: the key's contradictions and yanks still
hold (a client that wants none of its word removes it from its policy).

Example:
  lantern claim revoke --key leaked-builder.key leaked-builder.pub -o revoked.json`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			key := f.String("key", os.Getenv("LANTERN_KEY"), "private key `FILE` to sign with (default $LANTERN_KEY)")
			author := f.String("author", "", "revoke the key as an author of `NAME` (default: as a trusted builder)")
			out := f.String("o", "", "write the envelope to `FILE` (default standard output)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 {
					return usagef("claim revoke takes the revoked key: its KEY.pub file or its id, sha256:<hex>")
				}
				var id lantern.Digest
				if strings.HasPrefix(args[0], lantern.DigestPrefix) {
					d, err := lantern.ParseDigest(args[0])
					if err != nil {
						return usagef("key id %q: %v", args[0], err)
					}
					id = d
				} else {
					k, err := loadPublic(args[0])
					if err != nil {
						return err
					}
					id = k.ID()
				}
				t := &lantern.Trust{Key: id, Relation: lantern.RelationTrustedBuilder, Revoked: true, Time: time.Now().UTC().Truncate(time.Second)}
				if *author != "" {
					t.Relation, t.Name = lantern.RelationAuthor, *author
				}
				if err := t.Validate(); err != nil {
					return usagef("%v", err)
				}
				k, err := loadPrivate(io, *key)
				if err != nil {
					return err
				}
				if err := signAndWrite(io, t, k, *out, ""); err != nil {
					return err
				}
				if *out != "" {
					fmt.Fprintf(io.err, "revocation of %s written to %s\n", id, *out)
				}
				return nil
			}
		},
	}
}
