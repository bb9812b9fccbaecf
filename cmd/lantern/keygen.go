package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/lanternfarm/lantern/attest/keys"
)

func keygenCommand() command {
	return command{
		name:    "keygen",
		summary: "make a builder's signing key pair (cosign's format)",
		long: `Keygen writes a new ECDSA P-256 key pair in cosign's key-file format:
PREFIX.key, the private key encrypted with a password, and PREFIX.pub, the
public key. It prints the key id (sha256 of the public key's DER). The cosign
CLI reads both files, and Lantern reads pairs made by 'cosign generate-key-pair'.

The password comes from LANTERN_PASSWORD when it is set (it may be empty);
otherwise keygen asks for it on the terminal.

Example:
  LANTERN_PASSWORD=s3cret lantern keygen --output-key-prefix builder
  # builder.key, builder.pub; prints sha256:...`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			prefix := f.String("output-key-prefix", "lantern", "write `PREFIX`.key and PREFIX.pub")
			force := f.Bool("force", false, "overwrite existing key files")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("keygen takes no arguments, got %q", args)
				}
				return keygen(io, *prefix, *force)
			}
		},
	}
}

func keygen(io *stdio, prefix string, force bool) error {
	privPath, pubPath := prefix+".key", prefix+".pub"
	if !force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists: keygen will not overwrite a key; choose another --output-key-prefix or pass --force", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	pw, err := password(io, "Enter password for the new private key: ", true)
	if err != nil {
		return err
	}
	k, err := keys.Generate()
	if err != nil {
		return err
	}
	priv, err := k.MarshalEncrypted(pw)
	if err != nil {
		return err
	}
	if err := writeFile(privPath, priv, 0o600); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	if err := writeFile(pubPath, k.Public().MarshalPEM(), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	fmt.Fprintf(io.err, "Private key written to %s\nPublic key written to %s\n", privPath, pubPath)
	fmt.Fprintln(io.out, k.ID())
	return nil
}
