// Package lantern holds the domain types that every part of Lantern shares:
// the [Digest] that names any byte string, the claims builders and
// maintainers sign ([SourceClaim], [Rebuild], [RebuildFailure], [Trust],
// [Yank]) and nothing else. It does no I/O beyond hashing what it is handed,
// so the scheduler, the worker, the dashboard and the CLI can all import it
// without pulling in each other's technology.
//
// How the claims are signed and carried (in-toto statements in DSSE
// envelopes, cosign key files) is the business of package attest.
package lantern
