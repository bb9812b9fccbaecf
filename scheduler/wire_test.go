package scheduler_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
)

// rawClient is a plain nats.go connection with someone's credentials: what
// a hostile holder of those credentials can do with any client, not what
// Lantern's own code chooses to do. It records the errors the server sends.
type rawClient struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu   sync.Mutex
	errs []string
}

func (f *farm) raw(creds, inbox string) *rawClient {
	f.t.Helper()
	c := &rawClient{}
	nc, err := nats.Connect(f.nats.URL(), nats.UserCredentials(creds), nats.CustomInboxPrefix(inbox), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		f.t.Fatalf("connect: %v", err)
	}
	f.t.Cleanup(nc.Close)
	c.nc = nc
	if inbox == natsq.InboxPrefix(natsq.RoleScheduler, lantern.Digest{}) {
		c.js, err = jetstream.New(nc)
	} else {
		// Builders and claimants reach the farm's JetStream API from
		// their own account, under MembersAPIPrefix.
		c.js, err = jetstream.NewWithAPIPrefix(nc, natsq.MembersAPIPrefix)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// refused waits for the server's permissions violation of what on subject.
func (c *rawClient) refused(t *testing.T, what, subject string) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatalf("%s: flush: %v", what, err)
	}
	want := fmt.Sprintf("%q", subject)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		for i, e := range c.errs {
			if strings.Contains(strings.ToLower(e), "permissions violation") && strings.Contains(e, want) {
				c.errs = append(c.errs[:i], c.errs[i+1:]...)
				c.mu.Unlock()
				return
			}
		}
		errs := strings.Join(c.errs, "; ")
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s: the server did not refuse it (no permissions violation for %s; errors: %s)", what, want, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish publishes data on subject, as a request where reply is set.
func (c *rawClient) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	if err := c.nc.Publish(subject, data); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// request sends a request, as a JetStream API call is, with a reply
// subject of the client's own inbox.
func (c *rawClient) request(t *testing.T, subject string, data []byte) {
	t.Helper()
	if err := c.nc.PublishRequest(subject, c.nc.NewRespInbox(), data); err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
}

// settledState is busState once the farm is quiet: the same twice, a
// second apart (the scheduler acks what it ingested after storing it).
func (f *farm) settledState(t *testing.T) string {
	t.Helper()
	var last string
	eventually(t, "a quiet bus", func() bool {
		s := f.busState(t)
		quiet := s == last
		last = s
		if !quiet {
			time.Sleep(time.Second)
		}
		return quiet
	})
	return last
}

// busState is what a builder's attack must leave as it was: every stream's
// messages, every consumer's position, every object, and the store as the
// API shows it.
func (f *farm) busState(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	js := f.raw(f.nats.Auth.SchedulerCredsFile(), natsq.InboxPrefix(natsq.RoleScheduler, lantern.Digest{})).js
	var lines []string
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		st := info.State
		lines = append(lines, fmt.Sprintf("stream %s: %d messages, seq %d..%d", info.Config.Name, st.Msgs, st.FirstSeq, st.LastSeq))
		s, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			t.Fatal(err)
		}
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			lines = append(lines, fmt.Sprintf("consumer %s/%s: delivered %d, ack floor %d, ack pending %d, pending %d, redelivered %d",
				info.Config.Name, ci.Name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending, ci.NumPending, ci.NumRedelivered))
		}
		if err := cons.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := streams.Err(); err != nil {
		t.Fatal(err)
	}
	for name := range js.ObjectStoreNames(ctx).Name() {
		obs, err := js.ObjectStore(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		list, err := obs.List(ctx)
		if err != nil && err != jetstream.ErrNoObjectsFound {
			t.Fatal(err)
		}
		for _, o := range list {
			lines = append(lines, fmt.Sprintf("object %s/%s: %d bytes, %s", name, o.Name, o.Size, o.Digest))
		}
	}
	for _, path := range []string{"/api/v1/jobs", "/api/v1/deadletters", "/api/v1/sources", "/api/v1/builders"} {
		var v any
		code := f.do("GET", path, nil, &v)
		b, _ := json.Marshal(v)
		lines = append(lines, fmt.Sprintf("GET %s %d %s", path, code, b))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestBuilderStaysInItsRole holds builder A's credentials as an attacker
// would and tries, with a plain NATS client, everything the wire forbids a
// builder. The NATS server itself refuses each one — a permissions
// violation — and afterwards streams, consumers, objects and the store are
// as they were.
func TestBuilderStaysInItsRole(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/wire", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	// B, with its own credentials, uploads an output and takes its job.
	b := f.builder(builderB)
	out, err := b.PutObject(t.Context(), "B's output", bytes.NewReader([]byte("output of B")))
	if err != nil {
		t.Fatalf("B uploads to its bucket: %v", err)
	}
	rawB := f.raw(f.nats.Creds("b-raw", natsq.RoleBuilder, builderB.ID()), natsq.InboxPrefix(natsq.RoleBuilder, builderB.ID()))
	consumerB, err := rawB.js.Consumer(t.Context(), natsq.StreamJobs, natsq.ConsumerName(builderB.ID()))
	if err != nil {
		t.Fatalf("B binds its consumer: %v", err)
	}
	batch, err := consumerB.Fetch(1, jetstream.FetchMaxWait(time.Minute))
	if err != nil {
		t.Fatalf("B pulls its job: %v", err)
	}
	mB, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("B got no job: %v", batch.Error())
	}
	var got lantern.Job
	if err := json.Unmarshal(mB.Data(), &got); err != nil || got.ID != job.ID {
		t.Fatalf("B took %s (%v), want job %s", mB.Data(), err, job.ID)
	}
	eventually(t, "the job stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	before := f.settledState(t)

	a := f.raw(f.nats.Creds("a-attacker", natsq.RoleBuilder, builderA.ID()), natsq.InboxPrefix(natsq.RoleBuilder, builderA.ID()))
	consB := natsq.ConsumerName(builderB.ID())
	bucketB := natsq.BuilderBucket(builderB.ID())
	resultB, _ := natsq.ResultSubject(builderB.ID())

	t.Run("pull from B's consumer", func(t *testing.T) {
		subj := "$JS.API.CONSUMER.MSG.NEXT." + natsq.StreamJobs + "." + consB
		a.request(t, subj, []byte(`{"batch":1,"expires":1000000000}`))
		a.refused(t, "pull", subj)
		if _, err := a.js.Consumer(t.Context(), natsq.StreamJobs, consB); err == nil {
			t.Error("A bound B's consumer")
		}
		a.refused(t, "consumer info", natsq.MembersAPIPrefix+".CONSUMER.INFO."+natsq.StreamJobs+"."+consB)
	})
	t.Run("ack or term B's job", func(t *testing.T) {
		reply := mB.Reply()
		for _, body := range []string{"+ACK", "+TERM", "-NAK", "+WPI"} {
			a.publish(t, reply, []byte(body))
			a.refused(t, body+" of B's job", reply)
		}
	})
	t.Run("publish a job", func(t *testing.T) {
		subj, _ := natsq.JobSubject("generic", "forged")
		a.publish(t, subj, []byte(`{"id":"forged"}`))
		a.refused(t, "a job", subj)
	})
	t.Run("publish a result as B", func(t *testing.T) {
		a.publish(t, resultB, rebuilt(t, builderA, job, "forged"))
		a.refused(t, "B's result", resultB)
	})
	t.Run("say a difference report is made, or wanted", func(t *testing.T) {
		// Every scheduler stores what lantern.diffs.made.<key> says, and
		// runs diffoscope on what lantern.diffs.wanted.<key> asks for.
		for _, subj := range []string{natsq.SubjectDiffsMade + ".forged", natsq.SubjectDiffsWanted + ".forged"} {
			a.publish(t, subj, []byte(`{"a":"sha256:`+strings.Repeat("ab", 32)+`","b":"sha256:`+strings.Repeat("cd", 32)+`","state":"done","report":"sha256:`+strings.Repeat("ef", 32)+`"}`))
			a.refused(t, "a difference report", subj)
		}
	})
	t.Run("say B is building", func(t *testing.T) {
		subj, _ := natsq.BuildingSubject(builderB.ID())
		a.publish(t, subj, fmt.Appendf(nil, `{"job":%q,"building":true}`, job.ID))
		a.refused(t, "B's building subject", subj)
	})
	t.Run("publish an advisory", func(t *testing.T) {
		subj := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + natsq.StreamJobs + "." + consB
		a.publish(t, subj, []byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"LANTERN_JOBS","consumer":"`+consB+`","stream_seq":1,"deliveries":5}`))
		a.refused(t, "an advisory", subj)
	})
	t.Run("create a consumer", func(t *testing.T) {
		for _, subj := range []string{
			"$JS.API.CONSUMER.CREATE." + natsq.StreamJobs + ".mine",
			"$JS.API.CONSUMER.DURABLE.CREATE." + natsq.StreamJobs + ".mine",
			"$JS.API.CONSUMER.CREATE." + natsq.StreamJobs + "." + consB,
		} {
			a.request(t, subj, []byte(`{"stream_name":"LANTERN_JOBS","config":{"durable_name":"mine","ack_policy":"explicit"}}`))
			a.refused(t, "create a consumer", subj)
		}
		a.request(t, "$JS.API.CONSUMER.DELETE."+natsq.StreamJobs+"."+consB, nil)
		a.refused(t, "delete B's consumer", "$JS.API.CONSUMER.DELETE."+natsq.StreamJobs+"."+consB)
	})
	t.Run("purge or delete a stream", func(t *testing.T) {
		for _, op := range []string{"PURGE", "DELETE", "UPDATE"} {
			for _, stream := range []string{natsq.StreamResults, natsq.StreamClaims, natsq.StreamJobs, "OBJ_" + bucketB} {
				subj := "$JS.API.STREAM." + op + "." + stream
				a.request(t, subj, []byte(`{}`))
				a.refused(t, op+" "+stream, subj)
			}
		}
		a.request(t, "$JS.API.STREAM.CREATE.MINE", []byte(`{"name":"MINE","subjects":["lantern.>"]}`))
		a.refused(t, "create a stream", "$JS.API.STREAM.CREATE.MINE")
	})
	t.Run("overwrite or delete B's object", func(t *testing.T) {
		meta := "$O." + bucketB + ".M." + base64.URLEncoding.EncodeToString([]byte(out.String()))
		a.publish(t, meta, []byte(`{"name":"`+out.String()+`","deleted":true}`))
		a.refused(t, "B's object's metadata", meta)
		chunk := "$O." + bucketB + ".C.forged"
		a.publish(t, chunk, []byte("forged bytes"))
		a.refused(t, "a chunk in B's bucket", chunk)
		if _, err := a.js.ObjectStore(t.Context(), bucketB); err == nil {
			t.Error("A bound B's bucket")
		}
		a.refused(t, "B's bucket", natsq.MembersAPIPrefix+".STREAM.INFO.OBJ_"+bucketB)
		a.request(t, "$JS.API.STREAM.MSG.DELETE.OBJ_"+bucketB, []byte(`{"seq":1}`))
		a.refused(t, "delete a message of B's bucket", "$JS.API.STREAM.MSG.DELETE.OBJ_"+bucketB)
	})
	t.Run("answers aimed at the farm", func(t *testing.T) {
		// NATS does not check a request's reply subject against the
		// sender's permissions: a builder asks what it may ask, and aims
		// the server's answer at the farm's streams and JetStream API. In
		// the members' account, where builders are, those subjects lead
		// nowhere.
		bucketA := natsq.BuilderBucket(builderA.ID())
		consA := natsq.ConsumerName(builderA.ID())
		own := []string{
			natsq.MembersAPIPrefix + ".STREAM.INFO.OBJ_" + bucketA,
			natsq.MembersAPIPrefix + ".CONSUMER.INFO." + natsq.StreamJobs + "." + consA,
			natsq.MembersAPIPrefix + ".STREAM.MSG.GET.OBJ_" + bucketA,
		}
		// A job is queued only if its subject holds none, so an answer
		// stored on a job's subject to come would keep that job out
		// for good; a difference report's, likewise.
		_, future := sourceClaim(t, claimKey, "example.org/wire-future", lantern.Digest{})
		futureSubj, _ := natsq.JobSubject(future.Recipe, future.ID)
		targets := []string{
			"lantern.jobs.go", futureSubj, natsq.SubjectDiffsMade + ".future", natsq.SubjectDiffsWanted + ".future", natsq.SubjectClaims, resultB,
			"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + natsq.StreamJobs + "." + consB,
			"$JS.API.STREAM.PURGE." + natsq.StreamResults, "$JS.API.STREAM.DELETE." + natsq.StreamClaims,
			"$JS.API.CONSUMER.DELETE." + natsq.StreamJobs + "." + consB,
		}
		for _, req := range own {
			for _, reply := range targets {
				if err := a.nc.PublishRequest(req, reply, []byte(`{"last_by_subj":"$O.`+bucketA+`.M.x"}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// A Direct Get would answer with a stored message's own headers
		// and body: A may not ask one, and its bucket answers none.
		for _, subj := range []string{
			natsq.MembersAPIPrefix + ".DIRECT.GET.OBJ_" + bucketA + ".$O." + bucketA + ".C.x",
			"$JS.API.DIRECT.GET.OBJ_" + bucketA + ".$O." + bucketA + ".C.x",
		} {
			a.nc.PublishRequest(subj, "$JS.API.STREAM.DELETE."+natsq.StreamClaims, nil)
			a.refused(t, "a Direct Get", subj)
		}
		// The ack subject of another consumer's shape that ends like A's.
		for _, subj := range []string{
			"$JS.ACK." + natsq.StreamResults + "." + natsq.ConsumerResults + "." + natsq.StreamJobs + "." + consA + ".1.1.1",
			"$JS.ACK." + natsq.StreamJobs + "." + consB + ".1.1.1.1.1",
		} {
			a.request(t, subj, []byte("+NXT {\"batch\":10}"))
			a.refused(t, "a pull through an ack subject", subj)
		}
		// A takes its own job and acks it with B's job's ack subject as
		// the reply: the server's answer to an ack is empty, and an empty
		// message on an ack subject acks.
		consumerA, err := a.js.Consumer(t.Context(), natsq.StreamJobs, consA)
		if err != nil {
			t.Fatalf("A binds its own consumer: %v", err)
		}
		batch, err := consumerA.Fetch(1, jetstream.FetchMaxWait(time.Minute))
		if err != nil {
			t.Fatalf("A pulls its own job: %v", err)
		}
		mA, ok := <-batch.Messages()
		if !ok {
			t.Fatalf("A got no job: %v", batch.Error())
		}
		if err := a.nc.PublishRequest(mA.Reply(), mB.Reply(), []byte("+ACK")); err != nil {
			t.Fatal(err)
		}
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // for any answer to land where it could
	})
	t.Run("read what is not A's", func(t *testing.T) {
		for _, subj := range []string{natsq.InboxPrefix(natsq.RoleBuilder, builderB.ID()) + ".>", "lantern.>", "$JS.ACK.>", ">"} {
			if _, err := a.nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			a.refused(t, "subscribe to "+subj, subj)
		}
	})

	// A's own consumer is A's to use (it acked its own job above).
	notA := func(state string) string {
		var kept []string
		for _, l := range strings.Split(state, "\n") {
			if !strings.Contains(l, "/"+natsq.ConsumerName(builderA.ID())+":") {
				kept = append(kept, l)
			}
		}
		return strings.Join(kept, "\n")
	}
	if diff := cmp.Diff(notA(before), notA(f.settledState(t))); diff != "" {
		t.Errorf("the bus or the store changed under A's attempts (-before +after):\n%s", diff)
	}
	// A's own work still goes through its own doors.
	own := f.builder(builderA)
	if _, err := own.PutObject(t.Context(), "A's output", bytes.NewReader([]byte("output of A"))); err != nil {
		t.Fatalf("A uploads to its own bucket: %v", err)
	}
	// B still holds its job and finishes it.
	if err := mB.DoubleAck(t.Context()); err != nil {
		t.Errorf("B acks its job: %v", err)
	}
}

// TestClaimantMayOnlyClaim: a claimant's credentials publish claims and do
// nothing else.
func TestClaimantMayOnlyClaim(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	c := f.claimant()
	claim, job := sourceClaim(t, claimKey, "example.org/claimed", lantern.Digest{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.PublishClaim(ctx, claim); err != nil {
		t.Fatalf("a claimant publishes a claim: %v", err)
	}
	eventually(t, "the claim's job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	raw := f.raw(f.nats.Creds("claimant2", natsq.RoleClaimant, lantern.Digest{}), natsq.InboxPrefix(natsq.RoleClaimant, lantern.Digest{}))
	resultA, _ := natsq.ResultSubject(builderA.ID())
	raw.publish(t, resultA, rebuilt(t, builderA, job, "x"))
	raw.refused(t, "a result", resultA)
	subj, _ := natsq.JobSubject("go", "forged")
	raw.publish(t, subj, []byte(`{}`))
	raw.refused(t, "a job", subj)
	raw.publish(t, natsq.SubjectDiffsMade+".forged", []byte(`{}`))
	raw.refused(t, "a difference report", natsq.SubjectDiffsMade+".forged")
	raw.request(t, "$JS.API.STREAM.PURGE."+natsq.StreamClaims, nil)
	raw.refused(t, "purge the claims", "$JS.API.STREAM.PURGE."+natsq.StreamClaims)
}
