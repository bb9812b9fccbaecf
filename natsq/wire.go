package natsq

import (
	"fmt"
	"strings"

	"github.com/lanternfarm/lantern"
)

// Role is what a NATS user of a farm is for. What each role may publish
// and subscribe to is the table below ([RolePermissions]); the NATS server
// enforces it (package natsq/natsauth puts it in every user's JWT), so a
// user cannot do more than its role whatever client it runs.
type Role string

// The roles of a farm's NATS users.
const (
	// RoleScheduler administers Lantern's streams, consumers, object
	// stores and the scheduler names' bucket, publishes jobs and reads
	// everything.
	RoleScheduler Role = "scheduler"
	// RoleBuilder is one builder: it pulls, acks, naks, terms and sends
	// heartbeats on its own consumer, publishes results and what it is
	// building on its own subjects, and uploads to its own object store
	// bucket. Nothing else.
	RoleBuilder Role = "builder"
	// RoleClaimant publishes source claims and nothing else.
	RoleClaimant Role = "claimant"
)

// Permissions are the subjects a user may publish and subscribe to, as
// NATS subject patterns. Publish.Deny overrides Publish.Allow.
type Permissions struct {
	PublishAllow   []string
	PublishDeny    []string
	SubscribeAllow []string
	SubscribeDeny  []string
}

// BucketPrefix starts the name of every builder's object store bucket,
// LANTERN_OBJECTS_<first 16 hex of its key id>: a builder uploads its logs
// and outputs there and nowhere else, so nobody can overwrite what another
// builder uploaded.
const BucketPrefix = BucketObjects + "_"

// BuilderBucket returns the name of builder's object store bucket; "" for
// the zero Digest.
func BuilderBucket(builder lantern.Digest) string {
	if builder.IsZero() {
		return ""
	}
	return BucketPrefix + builder.Hex()[:16]
}

// InboxPrefix is the prefix of the reply subjects of a connection of role
// (and builder, for RoleBuilder): each builder has inboxes of its own, so
// no builder can read the replies another one gets (its jobs, among them).
func InboxPrefix(role Role, builder lantern.Digest) string {
	switch role {
	case RoleBuilder:
		return "_INBOX_" + ConsumerName(builder)
	case RoleClaimant:
		return "_INBOX_claimant"
	default:
		return "_INBOX_scheduler"
	}
}

// MembersAPIPrefix is where builders and claimants reach the JetStream API
// of the farm's account, from theirs (package natsq/natsauth): the farm
// exports to them only the calls they need, and each one's permissions
// narrow those to what is its own.
const MembersAPIPrefix = "LANTERN.JS.API"

// jsEvents is where the server publishes JetStream's advisories, which the
// dead-letter stream captures: nobody publishes there but the server.
const jsEvents = "$JS.EVENT.>"

// namesSubjects are the subjects of the scheduler names' bucket
// (BucketSchedulers): its records and every JetStream API call on its
// stream, from the farm's account and from the members' ones. Only the
// scheduler may touch it; builders and claimants are denied it outright,
// whatever else their permissions allow.
func namesSubjects() []string {
	stream := "KV_" + BucketSchedulers
	out := []string{"$KV." + BucketSchedulers + ".>", MembersAPIPrefix + ".$KV." + BucketSchedulers + ".>"}
	for _, api := range []string{"$JS.API", MembersAPIPrefix} {
		out = append(out,
			api+".*.*."+stream, api+".*.*."+stream+".>", // STREAM.INFO, STREAM.PURGE, DIRECT.GET, CONSUMER.CREATE, ...
			api+".*.*.*."+stream, api+".*.*.*."+stream+".>", // STREAM.MSG.GET, STREAM.MSG.DELETE, CONSUMER.DURABLE.CREATE, ...
		)
	}
	return out
}

// RolePermissions returns what a user of role may do on the bus; builder
// names the builder for RoleBuilder. It is the one table of the wire's
// rights: the users' JWTs and the documentation are made from it.
func RolePermissions(role Role, builder lantern.Digest) (Permissions, error) {
	switch role {
	case RoleScheduler:
		// The farm's admin: everything in the farm's account but
		// forging the server's advisories.
		return Permissions{
			PublishAllow:   []string{">"},
			PublishDeny:    []string{jsEvents, "$SYS.>"},
			SubscribeAllow: []string{">"},
		}, nil
	case RoleClaimant:
		return Permissions{
			PublishAllow:   []string{SubjectClaims},
			PublishDeny:    namesSubjects(),
			SubscribeAllow: []string{InboxPrefix(role, builder) + ".>"},
		}, nil
	case RoleBuilder:
		if builder.IsZero() {
			return Permissions{}, fmt.Errorf("permissions of a builder: no builder key id")
		}
		cons := ConsumerName(builder)
		bucket := BuilderBucket(builder)
		result, err := ResultSubject(builder)
		if err != nil {
			return Permissions{}, err
		}
		building, err := BuildingSubject(builder)
		if err != nil {
			return Permissions{}, err
		}
		return Permissions{
			PublishAllow: []string{
				// Bind to its own consumer and pull from it.
				MembersAPIPrefix + ".CONSUMER.INFO." + StreamJobs + "." + cons,
				MembersAPIPrefix + ".CONSUMER.MSG.NEXT." + StreamJobs + "." + cons,
				// Ack, nak, term and heartbeat its own jobs: the ack
				// subject, $JS.ACK.<stream>.<consumer> and five numbers,
				// exactly (a ">" there would match another consumer's
				// subject of another shape).
				"$JS.ACK." + StreamJobs + "." + cons + ".*.*.*.*.*",
				// Its results, and which jobs it is building.
				result,
				building,
				// Its bucket: bind, look an object up (no Direct Get: the
				// bucket does not allow it), upload.
				MembersAPIPrefix + ".STREAM.INFO.OBJ_" + bucket,
				MembersAPIPrefix + ".STREAM.MSG.GET.OBJ_" + bucket,
				"$O." + bucket + ".>",
			},
			PublishDeny:    namesSubjects(),
			SubscribeAllow: []string{InboxPrefix(role, builder) + ".>"},
		}, nil
	}
	return Permissions{}, fmt.Errorf("permissions: unknown role %q", role)
}

// PermissionsTable renders the roles' permissions as text, for
// documentation and `lantern scheduler --print-nats-config`.
func PermissionsTable() string {
	var b strings.Builder
	example := lantern.DigestOf([]byte("example builder key"))
	for _, r := range []Role{RoleScheduler, RoleBuilder, RoleClaimant} {
		p, _ := RolePermissions(r, example)
		fmt.Fprintf(&b, "%s:\n", r)
		line := func(what string, subjects []string) {
			if len(subjects) > 0 {
				fmt.Fprintf(&b, "  %-16s %s\n", what, strings.Join(subjects, " "))
			}
		}
		line("publish", p.PublishAllow)
		line("publish denied", p.PublishDeny)
		line("subscribe", p.SubscribeAllow)
		line("subscribe denied", p.SubscribeDeny)
	}
	out := strings.ReplaceAll(b.String(), example.Hex(), "<key id, 64 hex>")
	return strings.ReplaceAll(out, example.Hex()[:16], "<key id, 16 hex>")
}
