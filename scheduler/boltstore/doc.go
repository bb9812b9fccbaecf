// Package boltstore keeps the scheduler's state in one bbolt file in the
// data dir: the source claims it accepted, the jobs they made and where each
// builder is with each job, the rebuild and failed-rebuild attestations that
// came back, the verdicts they led to, the difference reports they call
// for, dead letters and builders. It
// implements [scheduler.Store]. Everything in it can be rebuilt by replaying
// the NATS streams (lantern scheduler --reindex calls [Store.Reset] first).
//
// One process at a time: [Open] takes bbolt's file lock and fails with
// [ErrLocked] when another scheduler holds it. Every method is one bbolt
// transaction; writes are synced before they return (bbolt's NoSync is off),
// so a restart loses nothing a method reported as stored.
//
// # Layout
//
// Records are stored as the JSON of the scheduler's record types; index
// values are the key of a record. Keys are binary, built from these parts,
// so that every query is a Get or a scan of one key prefix, never of a whole
// bucket:
//
//	D      a digest's 32-byte SHA-256 sum
//	T      a time in 12 bytes that sort as times do (Unix seconds with the
//	       sign bit flipped, then nanoseconds; big-endian)
//	N      a big-endian uint64 sequence number: the order records were
//	       stored in, so that "oldest first" survives clocks and replays
//	s\0    a string and a 0 byte (strings in keys never hold a 0 byte)
//
// Records:
//
//	claims     D(envelope)                         → ClaimRecord, Raw left out
//	           D(envelope) "raw"                   → the envelope as received
//	jobs       job id                              → JobRecord
//	atts       D(envelope)                         → AttestationRecord, Raw left out
//	           D(envelope) "raw"                   → the envelope as received
//	verdicts   name\0 version\0 label\0 D(source) job\0 D(published)
//	                                               → Verdict, Conflicts left out
//	outcomes   job\0 label\0 N                     → Outcome
//	dead       job id\0 D(builder)                 → DeadLetter
//	builders   D(builder id)                       → BuilderRecord
//	sources    name\0 version\0                     → SourceRecord, Verdicts left out
//	diffs      D(output) D(output), smaller first   → DiffRecord
//	meta       "layout"                            → layout version
//
// Indexes, each with the bucket its values point into:
//
//	claims.source          name\0 version\0 N          → D           claims
//	jobs.time              T(created) job id           → job id      jobs
//	jobs.state             state\0 T(created) job id   → job id      jobs
//	atts.artefact          D(output) N                 → D           atts
//	atts.artefact.builder  D(output) D(builder) N      → D           atts
//	atts.source            name\0 version\0 N          → D           atts
//	atts.builder           D(builder) N                → D           atts
//	atts.answer            job id\0 D(builder) label   → D           atts
//	verdicts.artefact      D(artefact) verdicts key    → (empty)     verdicts
//	dead.time              T(time) dead key            → dead key    dead
//	sources.seq            N                           → sources key sources
//	sources.digest         D(source) sources key       → (empty)     sources
//	diffs.pending          diffs key                   → (empty)     diffs
//
// N in the atts indexes is the sequence of the atts bucket, in
// claims.source that of claims, in outcomes that of outcomes, in
// sources.seq that of sources. Queries read
// forward for oldest first (AttestationsByArtefact, AttestationsBySource,
// ClaimsOf, Outcomes) and backward for newest first (Jobs,
// AttestationsByBuilder, DeadLetters, Sources). A page's cursor is the base64url of
// the last key it returned.
//
// Notes for the next developer:
//   - A record's envelope (Raw) is kept verbatim under the record's key
//     and "raw", not as base64 in the record's JSON: records stay small and
//     quick to decode (a page of 50 attestations with 2 KiB envelopes reads
//     in 0.5 ms rather than 1.2), and the two keys sort next to each other,
//     so a record and its envelope usually share a leaf page (a write
//     dirties one page, not one in each of two buckets). Nothing scans
//     claims or atts, so the second key is in nobody's way.
//   - jobs.state has one entry per distinct state among a job's builders; a
//     job no builder has reported on yet is listed as queued.
//   - atts.answer is how PutAttestation finds that a builder already
//     answered a job for a label; an attestation with no job id is not in
//     it (and updates no job).
//   - A verdict is on one job (a source, a recipe and spec, a signer) and
//     one label, one per artefact the job's claims publish under it (zero
//     for none); PutAttestation and PutVerdicts replace the set of a job's
//     label. Conflicts are not kept: reads mark a verdict a conflict when
//     its source's record names more than one archive.
//   - verdicts.artefact only grows: an output once reported stays indexed,
//     and the published artefact is indexed from the first verdict on;
//     VerdictsOfArtefact skips entries whose verdict was replaced or no
//     longer counts the artefact.
//   - A builder's state of a job only moves up queued < dead < done <
//     failed, whatever order the messages arrive in, so a replay ends where
//     the live run did. Failed ranks above done because a job with several
//     labels that built some and failed one has failed.
//   - A source (name@version) gets its record and its place in sources.seq
//     from the first claim or attestation about it, whichever is stored
//     first; every source archive named for it is added to its record and
//     to sources.digest. The record keeps no verdicts: Sources reads them
//     from the verdicts bucket, under the same name\0 version\0 prefix.
//   - SearchSources by text reads the keys of the sources bucket (one
//     scan, no record decoded but those it returns); by digest prefix it
//     reads sources.digest and verdicts.artefact under the prefix.
//   - Changing a key or a value's meaning means a new layout version in
//     meta; Open refuses a file of another version (reindex into a new one).
//     Layout 2 added the sources buckets; layout 3 keyed outcomes and
//     verdicts by job. Open refuses another layout with ErrLayout, and
//     lantern scheduler rebuilds such a file from the streams by itself.
//   - The diffs buckets came later within layout 2: Open creates them where
//     they are missing. A file from before them holds no reports on its
//     old mismatches until an attestation of the same (source, label)
//     arrives, or a reindex replays them.
//   - diffs.pending lists the reports that are to be made; PutDiff takes a
//     report off it when it is done or failed, and PutAttestation puts a
//     failed one back on.
package boltstore
