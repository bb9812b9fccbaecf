package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/lanternfarm/lantern/attest/keys"
)

const passwordEnv = "LANTERN_PASSWORD"

// password returns the key password: LANTERN_PASSWORD if it is set (even to
// the empty string), else what a person types on the terminal, else an error
// that says how to give one.
func password(io *stdio, prompt string, confirm bool) ([]byte, error) {
	if pw, ok := os.LookupEnv(passwordEnv); ok {
		return []byte(pw), nil
	}
	if io.in == nil || !term.IsTerminal(int(io.in.Fd())) {
		return nil, fmt.Errorf("no password: set %s (it may be empty) or run on a terminal to be asked", passwordEnv)
	}
	fmt.Fprint(io.err, prompt)
	pw, err := term.ReadPassword(int(io.in.Fd()))
	fmt.Fprintln(io.err)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprint(io.err, "Enter the password again: ")
		again, err := term.ReadPassword(int(io.in.Fd()))
		fmt.Fprintln(io.err)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the two passwords differ; nothing was written")
		}
	}
	return pw, nil
}

// loadPrivate reads and decrypts a private key file.
func loadPrivate(io *stdio, path string) (*keys.Private, error) {
	if path == "" {
		return nil, usagef("--key is required: the private key file (made by 'lantern keygen' or 'cosign generate-key-pair')")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	pw, err := password(io, fmt.Sprintf("Enter password for private key %s: ", path), false)
	if err != nil {
		return nil, err
	}
	k, err := keys.ParsePrivate(b, pw)
	if err != nil {
		if errors.Is(err, keys.ErrPassword) {
			return nil, fmt.Errorf("%s: %w: check %s", path, err, passwordEnv)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// loadPublic reads a public key file.
func loadPublic(path string) (*keys.Public, error) {
	if path == "" {
		return nil, usagef("--key is required: the builder's public key file (the .pub that 'lantern keygen' or 'cosign generate-key-pair' wrote)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := keys.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// writeFile writes data to path atomically: a reader sees the old file or
// the new one, never half of one.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeOutput writes data to path, or to standard output when path is "" or "-".
func writeOutput(io *stdio, path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := io.out.Write(data)
		return err
	}
	if err := writeFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
