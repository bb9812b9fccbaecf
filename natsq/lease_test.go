package natsq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// A scheduler's /metrics show its hold on its name.
var _ scheduler.NameHolder = (*natsq.Queue)(nil)

// holdName takes q's name, failing the test if it cannot, and releases it
// when the test ends.
func holdName(t *testing.T, q *natsq.Queue, me natsq.Holder) *natsq.NameLease {
	t.Helper()
	l, err := q.HoldName(testCtx(t), me)
	if err != nil {
		t.Fatalf("HoldName() = %v", err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// nameRecord reads the record of name in the names' bucket, as the
// scheduler's user.
func nameRecord(t *testing.T, q *natsq.Queue, name string) jetstream.KeyValueEntry {
	t.Helper()
	kv, err := q.JetStreamForTest().KeyValue(testCtx(t), natsq.BucketSchedulers)
	if err != nil {
		t.Fatalf("bucket %s: %v", natsq.BucketSchedulers, err)
	}
	e, err := kv.Get(testCtx(t), name)
	if err != nil {
		t.Fatalf("record of %q: %v", name, err)
	}
	return e
}

// TestNameHeldOnce: while a scheduler holds its name, a second one of the
// same name refuses to start, naming where the first runs; the first keeps
// its name and takes messages. Once the first stops, the name is free at
// once.
func TestNameHeldOnce(t *testing.T) {
	f := natstest.Start(t)
	a := connectScheduler(t, f, natsq.Config{SchedulerName: "twin"})
	la := holdName(t, a, natsq.Holder{Host: "host-a", PID: 4242, API: "127.0.0.1:8080"})
	claims := &collector{}
	run(t, func(ctx context.Context) error { return a.ConsumeClaims(ctx, claims.handle) })

	b := connectScheduler(t, f, natsq.Config{SchedulerName: "twin"})
	_, err := b.HoldName(testCtx(t), natsq.Holder{Host: "host-b", PID: 7})
	var held *natsq.NameHeldError
	if !errors.As(err, &held) {
		t.Fatalf("HoldName() of a held name = %v, want a NameHeldError", err)
	}
	t.Logf("refused: %v", err)
	if held.Name != "twin" || held.Holder.Host != "host-a" || held.Holder.PID != 4242 {
		t.Errorf("NameHeldError = %+v, want the name twin held on host-a by pid 4242", held)
	}
	for _, want := range []string{`"twin"`, "host-a", "pid 4242", "127.0.0.1:8080", "since "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if h, taken := a.NameHeld(); !h || taken {
		t.Errorf("the first scheduler's NameHeld() = %v, %v; want held, not taken", h, taken)
	}
	if err := a.PublishClaim(testCtx(t), []byte("claim after the refusal")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first scheduler to take a claim", func() bool { return claims.len() == 1 })

	// Other names are free alongside.
	holdName(t, connectScheduler(t, f, natsq.Config{SchedulerName: "other"}), natsq.Holder{Host: "host-c"})

	if err := la.Release(testCtx(t)); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	lb := holdName(t, b, natsq.Holder{Host: "host-b"})
	if !lb.Held() {
		t.Errorf("the name, released and taken again: Held() = false")
	}
	if got := nameRecord(t, b, "twin"); !strings.Contains(string(got.Value()), "host-b") {
		t.Errorf("the name's record = %s, want host-b's", got.Value())
	}
}

// TestNameOfADeadScheduler: a scheduler that died without releasing its
// name (its connection gone, as with kill -9) holds it no longer than the
// TTL: the next scheduler of the name takes it over.
func TestNameOfADeadScheduler(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{SchedulerName: "phoenix", NameTTL: 2 * time.Second}
	a := connectScheduler(t, f, cfg)
	holdName(t, a, natsq.Holder{Host: "host-a"})
	a.ConnForTest().Close() // dead: no renewal, no release
	b := connectScheduler(t, f, cfg)
	lb := holdName(t, b, natsq.Holder{Host: "host-b"})
	if h, taken := b.NameHeld(); !h || taken || !lb.Held() {
		t.Errorf("after taking the dead one's name over: NameHeld() = %v, %v; want held", h, taken)
	}
	if got := nameRecord(t, b, "phoenix"); !strings.Contains(string(got.Value()), "host-b") {
		t.Errorf("the name's record = %s, want host-b's", got.Value())
	}
}

// TestNameTakenFromAHolder: a scheduler whose name another took (it was
// cut off from NATS for longer than the TTL, and a newcomer of the same
// name took the name over at the record it watched: here, by force) finds
// out at its next renewal, says so, and takes no more messages: its pull
// that waits is cut short, and every message goes to the newcomer.
func TestNameTakenFromAHolder(t *testing.T) {
	f := natstest.Start(t)
	// A short ack wait: a message the server had sent to the first
	// scheduler's cut pull comes back soon.
	cfg := natsq.Config{SchedulerName: "twin", AckWait: 3 * time.Second}
	a := connectScheduler(t, f, cfg)
	la := holdName(t, a, natsq.Holder{Host: "host-a"})
	claimsA, claimsB := &collector{}, &collector{}
	run(t, func(ctx context.Context) error { return a.ConsumeClaims(ctx, claimsA.handle) })
	if err := a.PublishClaim(testCtx(t), []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the holder to take a claim", func() bool { return claimsA.len() == 1 })

	b := connectScheduler(t, f, cfg)
	lb, err := b.TakeNameForTest(testCtx(t), natsq.Holder{Host: "host-b", PID: 99})
	if err != nil {
		t.Fatalf("take the name by force: %v", err)
	}
	t.Cleanup(func() { lb.Release(context.Background()) })
	waitFor(t, "the first holder to see its name taken", func() bool { _, taken := a.NameHeld(); return taken })
	if h, taken := a.NameHeld(); h || !taken {
		t.Errorf("the first holder's NameHeld() = %v, %v; want not held, taken", h, taken)
	}
	if by, ok := la.Taken(); !ok || by.Host != "host-b" || by.PID != 99 {
		t.Errorf("Taken() = %+v, %v; want host-b, pid 99", by, ok)
	}
	if h, taken := b.NameHeld(); !h || taken {
		t.Errorf("the newcomer's NameHeld() = %v, %v; want held", h, taken)
	}

	run(t, func(ctx context.Context) error { return b.ConsumeClaims(ctx, claimsB.handle) })
	const n = 20
	for i := range n {
		if err := b.PublishClaim(testCtx(t), fmt.Appendf(nil, "after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the newcomer to take every claim", func() bool { return distinct(claimsB.data()) == n })
	if got := claimsA.data(); len(got) != 1 {
		t.Errorf("the scheduler whose name was taken took %q, want only the claim before", got)
	}
	// The loser's release leaves the newcomer's record alone.
	if err := la.Release(testCtx(t)); err != nil {
		t.Errorf("Release() of a taken name = %v", err)
	}
	if got := nameRecord(t, b, "twin"); !strings.Contains(string(got.Value()), "host-b") {
		t.Errorf("the name's record after the loser's release = %s, want host-b's", got.Value())
	}
	if !lb.Held() {
		t.Errorf("the newcomer's Held() = false after the loser's release")
	}
}

func distinct(s []string) int {
	seen := map[string]bool{}
	for _, v := range s {
		seen[v] = true
	}
	return len(seen)
}

// TestNamesAreTheSchedulers: a builder's and a claimant's credentials,
// used as an attacker would with a plain NATS client, can neither read,
// write, delete nor purge a scheduler's record of its name, nor touch the
// bucket's stream: the server refuses each (a permissions violation), and
// the holder's record and hold are as they were.
func TestNamesAreTheSchedulers(t *testing.T) {
	f := natstest.Start(t)
	a := connectScheduler(t, f, natsq.Config{SchedulerName: "guarded"})
	la := holdName(t, a, natsq.Holder{Host: "host-a"})
	builder := testBuilder("mallory")
	connectBuilder(t, f, builder, natsq.Config{}) // the builder's account is on the server
	stream := "KV_" + natsq.BucketSchedulers
	forged := []byte(`{"instance":"forged","host":"mallory"}`)
	for _, who := range []struct {
		name, creds, inbox string
	}{
		{"builder", f.Creds("mallory", natsq.RoleBuilder, builder), natsq.InboxPrefix(natsq.RoleBuilder, builder)},
		{"claimant", f.Creds("claimant", natsq.RoleClaimant, lantern.Digest{}), natsq.InboxPrefix(natsq.RoleClaimant, lantern.Digest{})},
	} {
		t.Run(who.name, func(t *testing.T) {
			c := newRefusals(t, f, who.creds, who.inbox)
			// Its record, written as a KV client writes it, from the
			// farm's account and from the members' (a KV client with an
			// API prefix puts there).
			for _, subj := range []string{"$KV." + natsq.BucketSchedulers + ".guarded", natsq.MembersAPIPrefix + ".$KV." + natsq.BucketSchedulers + ".guarded"} {
				c.publish(t, subj, forged, nil)
				c.refused(t, "write the record", subj)
				del := nats.Header{"KV-Operation": []string{"DEL"}}
				c.publish(t, subj, nil, del)
				c.refused(t, "delete the record", subj)
				purge := nats.Header{"KV-Operation": []string{"PURGE"}, "Nats-Rollup": []string{"sub"}}
				c.publish(t, subj, nil, purge)
				c.refused(t, "purge the record", subj)
			}
			for _, api := range []string{"$JS.API", natsq.MembersAPIPrefix} {
				for _, call := range []string{
					"STREAM.INFO." + stream, "STREAM.PURGE." + stream, "STREAM.DELETE." + stream, "STREAM.UPDATE." + stream,
					"STREAM.MSG.GET." + stream, "STREAM.MSG.DELETE." + stream,
					"DIRECT.GET." + stream, "DIRECT.GET." + stream + ".$KV." + natsq.BucketSchedulers + ".guarded",
					"CONSUMER.CREATE." + stream, "CONSUMER.CREATE." + stream + ".mine.$KV." + natsq.BucketSchedulers + ".>",
					"CONSUMER.DURABLE.CREATE." + stream + ".mine",
				} {
					subj := api + "." + call
					c.request(t, subj, []byte(`{"seq":1,"last_by_subj":"$KV.`+natsq.BucketSchedulers+`.guarded"}`))
					c.refused(t, call, subj)
				}
			}
			// The KV client itself cannot bind the bucket.
			js, err := jetstream.NewWithAPIPrefix(c.nc, natsq.MembersAPIPrefix)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if _, err := js.KeyValue(ctx, natsq.BucketSchedulers); err == nil {
				t.Errorf("the %s bound the bucket %s", who.name, natsq.BucketSchedulers)
			}
		})
	}
	e := nameRecord(t, a, "guarded")
	if !strings.Contains(string(e.Value()), "host-a") || e.Operation() != jetstream.KeyValuePut {
		t.Errorf("the record after the attempts = %s (%v), want host-a's", e.Value(), e.Operation())
	}
	// The holder renews at the revision it wrote: still its own.
	before := e.Revision()
	waitFor(t, "the holder to renew its record", func() bool { return nameRecord(t, a, "guarded").Revision() != before })
	if h, taken := a.NameHeld(); !h || taken || !la.Held() {
		t.Errorf("the holder's NameHeld() after the attempts = %v, %v; want held", h, taken)
	}
}

// refusals is a plain NATS connection that records the server's errors.
type refusals struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func newRefusals(t *testing.T, f *natstest.Farm, creds, inbox string) *refusals {
	t.Helper()
	c := &refusals{}
	nc, err := nats.Connect(f.URL(), nats.UserCredentials(creds), nats.CustomInboxPrefix(inbox), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func (c *refusals) publish(t *testing.T, subject string, data []byte, h nats.Header) {
	t.Helper()
	if err := c.nc.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: h}); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

func (c *refusals) request(t *testing.T, subject string, data []byte) {
	t.Helper()
	if err := c.nc.PublishRequest(subject, c.nc.NewRespInbox(), data); err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
}

// refused waits for the server's permissions violation of what on subject.
func (c *refusals) refused(t *testing.T, what, subject string) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatalf("%s: flush: %v", what, err)
	}
	want := fmt.Sprintf("%q", subject)
	deadline := time.Now().Add(patience)
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
			t.Fatalf("%s on %s: the server did not refuse it (errors: %s)", what, subject, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutProxy forwards TCP connections to a NATS server on 127.0.0.1 until it
// is cut: then it holds every byte, both ways, with the connections left
// open, as a network partition does (the client sees no error, only
// silence).
type cutProxy struct {
	url     string
	mu      sync.Mutex
	open    chan struct{} // closed while bytes flow
	replies chan struct{} // closed while the server's bytes flow
	// trigger, when set, cuts the server's replies as soon as a client
	// sends it; triggered is when.
	trigger   string
	triggered time.Time
}

// connectThroughCut connects a scheduler's queue of cfg to f through a
// cutProxy, and sets the farm up.
func connectThroughCut(t *testing.T, f *natstest.Farm, cfg natsq.Config) (*natsq.Queue, *cutProxy) {
	t.Helper()
	p := startCutProxy(t, f.URL())
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	a, err := natsq.Connect(ctx, p.url, f.SchedulerConfig(cfg), testLog(t))
	if err != nil {
		t.Fatalf("Connect() through the proxy = %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Setup(testCtx(t)); err != nil {
		t.Fatalf("Setup() = %v", err)
	}
	return a, p
}

func startCutProxy(t *testing.T, serverURL string) *cutProxy {
	t.Helper()
	target := strings.TrimPrefix(serverURL, "nats://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &cutProxy{url: "nats://" + ln.Addr().String(), open: make(chan struct{}), replies: make(chan struct{})}
	close(p.open)
	close(p.replies)
	var conns sync.WaitGroup
	t.Cleanup(conns.Wait)
	pipe := func(dst, src net.Conn, toServer bool) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if toServer {
				p.watch(buf[:n])
			}
			p.gate(toServer)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close(); p.heal() })
			conns.Add(2)
			go func() { defer conns.Done(); pipe(s, c, true) }()
			go func() { defer conns.Done(); pipe(c, s, false) }()
		}
	}()
	return p
}

// gate waits while the proxy is cut, or the server's replies are.
func (p *cutProxy) gate(toServer bool) {
	p.mu.Lock()
	open, replies := p.open, p.replies
	p.mu.Unlock()
	<-open
	if !toServer {
		<-replies
	}
}

// watch cuts the replies when b, sent by a client, holds the trigger.
func (p *cutProxy) watch(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.trigger != "" && strings.Contains(string(b), p.trigger) {
		p.trigger = ""
		p.triggered = time.Now()
		p.replies = make(chan struct{})
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

func (p *cutProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []chan struct{}{p.open, p.replies} {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

// TestNameHoldLapsesWhileCutOff: a holder cut off from NATS (its rewrites
// unanswered, each waiting out its timeout) stops holding its name, and
// taking messages, no later than the TTL after its last confirmed rewrite
// was sent, which is the earliest a newcomer may take the name over —
// however long its unanswered rewrite waits. The newcomer then holds the
// name alone; once the cut heals, the holder finds its name taken.
func TestNameHoldLapsesWhileCutOff(t *testing.T) {
	f := natstest.Start(t)
	// The shortest TTL: its rewrites (every 200ms) wait up to a second
	// for an answer.
	cfg := natsq.Config{SchedulerName: "island", NameTTL: time.Second}
	a, p := connectThroughCut(t, f, cfg)
	la := holdName(t, a, natsq.Holder{Host: "host-a"})
	t.Cleanup(p.heal) // before the release
	start := la.ConfirmedForTest()
	waitFor(t, "a confirmed rewrite", func() bool { return la.ConfirmedForTest().After(start) })

	p.cut()
	checked := false
	for !checked {
		c := la.ConfirmedForTest()
		if time.Since(c) >= cfg.NameTTL {
			if held, _ := a.NameHeld(); (held || la.Held()) && la.ConfirmedForTest().Equal(c) {
				t.Fatalf("cut off since a rewrite sent %v ago (the TTL is %v): the name is still held", time.Since(c).Round(time.Millisecond), cfg.NameTTL)
			}
			checked = true
		}
		time.Sleep(5 * time.Millisecond)
	}

	b := connectScheduler(t, f, cfg)
	lb := holdName(t, b, natsq.Holder{Host: "host-b"})
	if la.Held() || !lb.Held() {
		t.Errorf("after the newcomer took the name over: the cut-off holder's Held() = %v, the newcomer's = %v; want false, true", la.Held(), lb.Held())
	}
	p.heal()
	waitFor(t, "the cut-off holder to find its name taken", func() bool { _, taken := la.Taken(); return taken })
	if la.Held() {
		t.Errorf("the holder whose name was taken: Held() = true")
	}
}

// TestHolderShownSafely: what a name's record says of its holder is shown
// in a refusal on a terminal and in logs: control characters (escape
// sequences that move the cursor or retitle the window) are shown quoted,
// and a huge field is cut.
func TestHolderShownSafely(t *testing.T) {
	h := natsq.Holder{Host: "evil\x1b]0;owned\x07\x1b[2J\r\nhost", API: strings.Repeat("\x1b[1A", 10000), PID: -1}
	for _, s := range []string{h.String(), (&natsq.NameHeldError{Name: "twin", Holder: h}).Error()} {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("shown with control characters: %q", s)
		}
		if len(s) > 1000 {
			t.Errorf("shown in %d bytes, want a cut", len(s))
		}
	}
}

// TestNameReleasedAfterALostAnswer: a scheduler that stops while a
// rewrite of its record is under way, whose answer is lost or comes late
// (here: held by a cut that heals as Release runs), still deletes its
// record, so that its successor starts at once instead of after the TTL.
func TestNameReleasedAfterALostAnswer(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{SchedulerName: "restart", NameTTL: time.Second}
	a, p := connectThroughCut(t, f, cfg)
	la := holdName(t, a, natsq.Holder{Host: "host-a"})
	t.Cleanup(p.heal)
	start := la.ConfirmedForTest()
	waitFor(t, "a confirmed rewrite", func() bool { return la.ConfirmedForTest().After(start) })

	p.cut()
	time.Sleep(300 * time.Millisecond) // a rewrite (every 200ms) waits for its answer
	released := make(chan error, 1)
	go func() { released <- la.Release(testCtx(t)) }()
	time.Sleep(100 * time.Millisecond)
	p.heal() // the rewrite is stored, as Release waits for it
	if err := <-released; err != nil {
		t.Fatalf("Release() = %v", err)
	}
	b := connectScheduler(t, f, cfg)
	kv, err := b.JetStreamForTest().KeyValue(testCtx(t), natsq.BucketSchedulers)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(testCtx(t), "restart"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		var v []byte
		if e != nil {
			v = e.Value()
		}
		t.Fatalf("the record after Release() = %s, %v; want it deleted", v, err)
	}
}

// TestNameHeldAfterALostAnswer: a starting scheduler whose write of its
// record was stored but whose answer was lost (here: the server's replies
// held from the moment the write is sent until the write times out) finds
// its own record on reading it again, and holds the name as of when its
// write was sent, not as of that later read: a newcomer counts the TTL
// from the write, so a hold counted from the read could outlast it.
func TestNameHeldAfterALostAnswer(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{SchedulerName: "echo"}
	a, p := connectThroughCut(t, f, cfg)
	t.Cleanup(p.heal)
	p.mu.Lock()
	p.trigger = "PUB $KV." + natsq.BucketSchedulers + ".echo "
	p.mu.Unlock()
	held := make(chan error, 1)
	var la *natsq.NameLease
	go func() {
		var err error
		// No deadline: each request waits for JetStream's default timeout.
		la, err = a.HoldName(t.Context(), natsq.Holder{Host: "host-a"})
		held <- err
	}()
	waitFor(t, "the record's write to be sent", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.trigger == ""
	})
	time.Sleep(7 * time.Second) // past the write's timeout: its answer is lost
	p.heal()
	if err := <-held; err != nil {
		t.Fatalf("HoldName() = %v", err)
	}
	t.Cleanup(func() { la.Release(context.Background()) })
	p.mu.Lock()
	sent := p.triggered
	p.mu.Unlock()
	if c := la.ConfirmedForTest(); c.After(sent) {
		t.Errorf("the hold is confirmed as of %v after its write was sent: the newcomer's TTL runs from the write", c.Sub(sent).Round(time.Millisecond))
	}
}
