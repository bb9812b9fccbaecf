// Package natsq is Lantern's queue and transport over NATS JetStream: the
// scheduler's queue (scheduler.Queue) and the workers' job consumers. It
// imports only the domain package lantern: the scheduler and the worker each
// declare what they use of it. The embedded NATS server is package
// natsq/natsserver, and the farm's identities package natsq/natsauth.
//
// Claims, jobs and results are JetStream streams that outlive every process:
// a scheduler or a worker that restarts picks up where its durable consumer
// left off, and the scheduler's state can be rebuilt by replaying the claims
// and results streams ([Queue.Replay]).
//
// # Several schedulers
//
// The streams are the record; each scheduler's store is its own view of
// them. Two or more schedulers can serve one farm side by side, each named
// (Config.SchedulerName, `lantern scheduler --scheduler-name`) and each
// reading every claim, result, dead letter and difference report through
// durable consumers of its own. What must happen once happens once across
// them. A claim's job is published on a subject of its own with
// Nats-Expected-Last-Subject-Sequence 0, so the stream stores it only if
// that subject is empty: however many schedulers ingest the claim, and
// however late (past the duplicate window, after a crash between publishing
// the job and storing the claim), it is queued once ([Queue.PublishJobs]).
// A difference report is asked for once on lantern.diffs.wanted.<key> the
// same way ([Queue.WantDiff]); the request goes to one of the schedulers
// with a diffoscope through the shared consumer scheduler-diffoscope, which
// keeps it with in-progress heartbeats while diffoscope runs and gives it to
// another after the ack wait if that scheduler dies
// ([Queue.ConsumeDiffWork]); what came of it is published once on
// lantern.diffs.made.<key> ([Queue.MadeDiff]) and read by every scheduler.
// Losing a scheduler loses its share of the reads and nothing else.
//
// A farm from before named schedulers has the shared consumers
// scheduler-claims, scheduler-results and scheduler-dead, which split the
// messages between schedulers: a named scheduler's Setup deletes them, and
// its own consumers read the streams once more from the first message
// (harmless: a claim or result its store has is skipped, and a job already
// queued is not queued again). A scheduler without a name still uses them:
// run only one such, or name them all.
//
// One name is held by one running scheduler at a time ([Queue.HoldName]):
// two of one name would split its consumers' messages, and each store
// would miss what the other took. The holder rewrites its record in the
// key-value bucket LANTERN_SCHEDULERS (Config.Replicas replicas, history
// 1) every Config.NameTTL/5, each write checked against the revision it
// last wrote; a scheduler that starts while the record changes refuses
// to ([NameHeldError]), and takes over a record that stood still for
// Config.NameTTL (its holder died). A scheduler takes messages only while
// its last confirmed rewrite is younger than Config.NameTTL/2; one that
// finds its record rewritten by another (it was cut off for longer than
// the TTL) yields to that later starter for good: its consumers take no
// more messages, and its log and /metrics say so.
//
// # Wire protocol
//
// The streams below are the whole protocol between the scheduler and the
// workers; anything that speaks NATS can take part. Every stream uses file
// storage and Config.Replicas replicas (default 1), limits retention with
// discard new (a full stream refuses what comes next; nothing is
// discarded), Config.StreamMaxBytes (1 GiB; the dead letters'
// Config.DeadMaxBytes, 64 MiB), Config.StreamMaxAge (for ever) and
// Config.MaxMsgSize (1 MiB), and a duplicate window of
// Config.DuplicateWindow (default 2 minutes) for its Nats-Msg-Id.
// LANTERN_DIFFS is bounded by Config.DeadMaxBytes too.
//
//	stream           subjects                                                  message data                          Nats-Msg-Id                   published by
//	LANTERN_CLAIMS   lantern.claims, lantern.claims.api                        source-claim DSSE envelope, as posted  sha256 hex of the data        claimants (CLI, bridges, peers); the scheduler's API on .api
//	LANTERN_JOBS     lantern.jobs.<recipe>.<job id>                            lantern.Job as JSON                    the job id (lantern.JobID)    scheduler, only if the subject is empty
//	LANTERN_RESULTS  lantern.results.<builder key id, 64 hex>                  attestation DSSE envelope              sha256 hex of the data        workers
//	LANTERN_DEAD     $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.LANTERN_JOBS.>  JetStream max_deliver advisory (JSON)  -                             the NATS server itself
//	LANTERN_DIFFS    lantern.diffs.wanted.<key>, lantern.diffs.made.<key>     the report's record (JSON)             -                             schedulers, only if the subject is empty
//
// Jobs published before named schedulers are on lantern.jobs.<recipe>; the
// builders' consumers take both. A difference report's key is 32 hex digits
// of a hash of its two outputs and the time it was wanted (a stream time,
// the same for every scheduler).
//
// LANTERN_DEAD captures the server's advisories, so a job that exhausted its
// deliveries while the scheduler was down is still there when it comes back.
// Logs and artefacts go to object store buckets: each builder's own,
// LANTERN_OBJECTS_<key id, 16 hex> (stream OBJ_LANTERN_OBJECTS_<...>), which
// only that builder uploads to, and the farm's LANTERN_OBJECTS, where the
// scheduler keeps its difference reports. An object's name is the
// "sha256:<hex>" digest of its bytes, and its description the name its
// uploader gave it; a reader takes an object only once its bytes hash to its
// name ([Queue.GetObject]). A builder's bucket holds at most
// Config.BuilderBucketMaxBytes (2 GiB), the farm's Config.BucketMaxBytes
// (1 GiB). Build logs (described "log of ...", [LogPrefix]) are kept;
// outputs are removed by the scheduler once their difference report is made
// and after its retention ([Queue.RemoveOutput], [Queue.RemoveOutputsBefore]),
// and so are the chunks of uploads that never finished.
//
// # Who may do what
//
// Nobody connects anonymously, and each user's role ([Role]) limits what it
// may publish and subscribe to; the NATS server enforces it, from the user's
// JWT (package natsq/natsauth makes them from [RolePermissions], the one
// table of the wire's rights). A builder binds and pulls only its own
// consumer, acks only its own jobs, publishes only on its own results
// subject, uploads only to its own bucket, and reads replies only in its own
// inbox ([InboxPrefix]); nobody but the server publishes advisories, and
// nobody but the scheduler creates, updates, purges or deletes streams,
// consumers or buckets. The scheduler names' bucket, LANTERN_SCHEDULERS, is
// the scheduler's alone: builders and claimants are denied its subjects and
// its stream's API outright, whatever else they are allowed. A worker's [Connect] creates nothing; the scheduler's
// [Queue.Setup] and [Queue.EnsureBuilder] do. Builders and claimants are
// users of accounts of their own, which reach the farm's JetStream API under
// [MembersAPIPrefix] and import only their own subjects (see natsq/natsauth).
//
// # On a cluster
//
// With Config.Replicas 3 (`--nats-replicas 3`) every stream, both kinds of
// bucket and, through them, every durable consumer (whose replicas follow
// its stream's) are kept on three servers; Setup and EnsureBuilder bring a
// farm set up with fewer up to Config.Replicas, and say what to do when the
// server cannot (a server in no cluster). Connect takes the URLs of all the
// servers, comma-separated, and reconnects to another when one goes. While
// a stream or consumer elects a new leader, requests find nobody to answer
// them or lose their answer with the node: acks, naks, terms and heartbeats
// of jobs, the scheduler's acks, results, claims and uploads are tried
// again with a growing pause until they are confirmed (each is safe to
// repeat), within their ctx or a bound of their own.
//
// Durable consumers (all pull consumers, explicit acks):
//
//	consumer                    stream           reader                        ack wait          max deliver        starts at
//	builder-<key id, 16 hex>    LANTERN_JOBS     every worker of that builder  Config.AckWait    Config.MaxDeliver  all jobs (backlog) or new ones
//	scheduler-<name>-claims     LANTERN_CLAIMS   that scheduler                Config.AckWait    unlimited          the first message
//	scheduler-<name>-results    LANTERN_RESULTS  that scheduler                Config.AckWait    unlimited          the first message
//	scheduler-<name>-dead       LANTERN_DEAD     that scheduler                Config.AckWait    unlimited          the first message
//	scheduler-<name>-diffs      LANTERN_DIFFS    that scheduler (made.>)       Config.AckWait    unlimited          the first message
//	scheduler-diffoscope        LANTERN_DIFFS    schedulers with diffoscope    Config.AckWait    unlimited          the first message
//	                            (wanted.>)       (each request to one)
//
// (A scheduler with no name has scheduler-claims, scheduler-results,
// scheduler-dead and scheduler-diffs.)
//
// Each builder has one consumer, so each builder rebuilds each job once and
// its worker processes share the jobs. The builder's consumer carries its full
// key id in its metadata under "lantern-builder"; Config.BackOff, when set,
// replaces the ack wait with NATS's per-delivery back-off (AckWait becomes
// BackOff[0]). Ack wait defaults to 2 minutes and max deliver to 5.
//
// A worker takes one job at a time (a pull of one message; nothing is
// prefetched to expire while it builds), says so on
// lantern.building.<key id> (core NATS, kept by no stream: progress that
// `lantern rebuild --wait` shows), sends in-progress heartbeats (+WPI) and
// says so again more often than the ack wait while it works, publishes its signed
// attestation — a failed rebuild is signed too — on lantern.results.<key id>,
// and then acks the job. It naks the job (with a delay) when its own
// infrastructure failed, so that it is tried again, and terminates it only
// when the job can never be done. A worker that dies leaves its job to be
// redelivered after the ack wait. When the last delivery times out, or is
// nak'd and the consumer is next pulled, the server publishes the
// max-deliveries advisory that [Queue.ConsumeDeadLetters] turns into a
// [lantern.DeadLetter].
package natsq
