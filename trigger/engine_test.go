package trigger

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/rules"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// clock is a test clock that only moves when told.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) {
	c.ns.Add(int64(d))
}

// received is one request the receiver got.
type received struct {
	ID, Timestamp, Signature string
	Body                     []byte
	Msg                      payload
}

// receiver is a real local HTTP server that records what arrives and
// answers with status(n) for the n-th request (from 1).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status func(n int) int
	hold   chan struct{} // when set, requests wait on it
	held   atomic.Int32  // requests waiting on hold
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{status: func(int) int { return 200 }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.hold != nil {
			r.held.Add(1)
			<-r.hold
		}
		body, _ := io.ReadAll(req.Body)
		rec := received{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Signature: req.Header.Get("webhook-signature"), Body: body}
		_ = json.Unmarshal(body, &rec.Msg)
		r.mu.Lock()
		r.got = append(r.got, rec)
		n := len(r.got)
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// harness runs an Engine over a real embedded store with a test clock.
type harness struct {
	t     *testing.T
	store *embeddedstore.Store
	svc   *profile.Service
	clock *clock
	set   *rules.Set
	eng   *Engine
	pol   *profile.Policy
}

const testDefs = `
segments:
  - {id: cart-abandoners, rule: {field: cart.abandoned_for, gte: 30m}}
  - {id: buyers, rule: {event: purchase}}
webhooks:
  - {id: mailer, url: "URL", segments: [cart-abandoners], fields: [first_name, shoe_size, birthday]}
`

func newHarness(t *testing.T, defs string, st *embeddedstore.Store, c *clock) *harness {
	t.Helper()
	if st == nil {
		var err error
		st, err = embeddedstore.Open(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
	}
	if c == nil {
		c = newClock(time.Now().Truncate(time.Second))
	}
	set, err := rules.Compile([]byte(defs))
	require.NoError(t, err)
	signer, err := NewSigner(testSecret)
	require.NoError(t, err)
	h := &harness{t: t, store: st, clock: c, set: set}
	h.svc = profile.NewService(st, profile.Options{Now: c.Now})
	h.eng = New(Config{Store: st, Signer: signer, Now: c.Now, Poll: 10 * time.Millisecond, RetryMin: time.Second, Workers: 2})
	h.pol = set.Policy(profile.Policy{})
	h.pol.Watcher = h.eng.Watcher(set)
	return h
}

func (h *harness) start() {
	h.eng.Start(func() (*rules.Set, *profile.Policy) { return h.set, h.pol }, h.svc)
	h.t.Cleanup(h.eng.Close)
}

// contact creates a known contact and returns its profile id.
func (h *harness) contact(email string) string {
	h.t.Helper()
	pid := profile.NewID()
	h.record(pid, profile.Event{Type: profile.Identify, Email: email, Trusted: true, Proven: true, Fields: map[string]profile.Value{
		"first_name": {Kind: profile.KindString, Str: "Sam"},
	}})
	return pid
}

func (h *harness) record(pid string, evs ...profile.Event) {
	h.t.Helper()
	_, err := h.svc.Record(context.Background(), pid, nil, evs, h.pol)
	require.NoError(h.t, err)
}

func (h *harness) status(id string) profile.TriggerCounts {
	c, err := h.eng.Status(context.Background(), id)
	require.NoError(h.t, err)
	return c
}

func defsFor(r *receiver) string {
	return replaceURL(testDefs, r.srv.URL+"/hook")
}

func replaceURL(doc, url string) string {
	out := []byte{}
	for i := 0; i < len(doc); i++ {
		if i+3 <= len(doc) && doc[i:i+3] == "URL" {
			out = append(out, url...)
			i += 2
			continue
		}
		out = append(out, doc[i])
	}
	return string(out)
}

var cartAdd = profile.Event{Type: profile.CartAdd, SKU: "veja-45", Price: 120}

func TestSignerVectors(t *testing.T) {
	// The specification's published vector.
	s, err := NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ=", "whsec_" + string(make([]byte, 200))} {
		_, err := NewSigner(bad)
		assert.Error(t, err, bad)
	}
	fresh := NewSecret()
	_, err = NewSigner(fresh)
	require.NoError(t, err)
	assert.NotEqual(t, fresh, NewSecret())
}

// verify checks a delivery with the Standard Webhooks reference library.
func verify(t testing.TB, r received) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	require.NoError(t, err)
	hdr := http.Header{}
	hdr.Set("webhook-id", r.ID)
	hdr.Set("webhook-timestamp", r.Timestamp)
	hdr.Set("webhook-signature", r.Signature)
	require.NoError(t, wh.VerifyIgnoringTimestamp(r.Body, hdr), "signature of %s", r.ID)
	hdr.Set("webhook-signature", r.Signature[:len(r.Signature)-4]+"AAA=")
	require.Error(t, wh.VerifyIgnoringTimestamp(r.Body, hdr))
}

func TestCartAbandonedEntersThenPurchaseExits(t *testing.T) {
	r := newReceiver(t)
	h := newHarness(t, defsFor(r), nil, nil)
	h.start()
	pid := h.contact("sam@example.nl")
	h.record(pid, profile.Event{Type: profile.FormSubmit, Form: "f", Fields: map[string]profile.Value{"shoe_size": {Kind: profile.KindNumber, Num: 45}}})
	h.record(pid, cartAdd)
	h.clock.Advance(29 * time.Minute)
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, r.all(), "nothing before the 30 minutes")
	h.clock.Advance(time.Minute)
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, 5*time.Second, 10*time.Millisecond)
	got := r.all()[0]
	verify(t, got)
	assert.Equal(t, "segment.entered", got.Msg.Type)
	assert.Equal(t, "cart-abandoners", got.Msg.Data.Segment)
	assert.Equal(t, contact{Email: "sam@example.nl"}, got.Msg.Data.Contact)
	assert.Equal(t, map[string]any{"first_name": "Sam", "shoe_size": 45.0}, got.Msg.Data.Fields)
	assert.Equal(t, strconv.FormatInt(h.clock.Now().Unix(), 10), got.Timestamp)

	h.record(pid, profile.Event{Type: profile.Purchase, OrderID: "o1", Items: []profile.Item{{SKU: "veja-45", Price: 120}}})
	require.Eventually(t, func() bool { return len(r.all()) == 2 }, 5*time.Second, 10*time.Millisecond)
	got2 := r.all()[1]
	verify(t, got2)
	assert.Equal(t, "segment.exited", got2.Msg.Type)
	assert.NotEqual(t, got.ID, got2.ID)
	require.Eventually(t, func() bool { return h.status("mailer").Delivered == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, profile.TriggerCounts{Delivered: 2}, h.status("mailer"))

	// An anonymous visitor abandoning a cart triggers nothing.
	h.record(profile.NewID(), cartAdd)
	h.clock.Advance(time.Hour)
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, r.all(), 2)
}

func TestRetryKeepsWebhookID(t *testing.T) {
	r := newReceiver(t)
	r.status = func(n int) int {
		if n <= 3 {
			return 500
		}
		return 204
	}
	h := newHarness(t, defsFor(r), nil, nil)
	h.start()
	pid := h.contact("sam@example.nl")
	h.record(pid, cartAdd)
	h.clock.Advance(31 * time.Minute)
	for i := 2; i <= 4; i++ {
		require.Eventually(t, func() bool { return len(r.all()) >= i-1 }, 5*time.Second, 5*time.Millisecond)
		time.Sleep(30 * time.Millisecond)
		assert.Len(t, r.all(), i-1, "no retry before its backoff")
		h.clock.Advance(time.Minute) // past any backoff from 1 s doubling
	}
	require.Eventually(t, func() bool { return len(r.all()) == 4 }, 5*time.Second, 5*time.Millisecond)
	got := r.all()
	for _, g := range got {
		verify(t, g)
		assert.Equal(t, got[0].ID, g.ID, "a retry keeps its webhook-id")
		assert.Equal(t, got[0].Body, g.Body)
	}
	require.Eventually(t, func() bool { return h.status("mailer").Delivered == 1 }, 5*time.Second, 5*time.Millisecond)
	st := h.status("mailer")
	assert.Equal(t, int64(3), st.Retries)
	assert.Equal(t, int64(0), st.Pending)
	assert.Equal(t, "HTTP 500", st.LastError)
	h.clock.Advance(time.Hour)
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, r.all(), 4, "nothing more once delivered")
}

func TestGivesUpAfter24Hours(t *testing.T) {
	r := newReceiver(t)
	r.status = func(int) int { return 503 }
	h := newHarness(t, defsFor(r), nil, nil)
	h.start()
	pid := h.contact("sam@example.nl")
	h.record(pid, cartAdd)
	h.clock.Advance(31 * time.Minute)
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return h.status("mailer").Pending == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.False(t, h.status("mailer").Oldest.IsZero())
	// An hour at a time: the backoff is capped at an hour, so every step
	// makes one retry due (or ends it); wait for the engine to act on each
	// step rather than sleeping, or a busy machine skips tries.
	for i := 0; i < 30 && h.status("mailer").Failed == 0; i++ {
		before := len(r.all())
		h.clock.Advance(time.Hour)
		require.Eventually(t, func() bool { return len(r.all()) > before || h.status("mailer").Failed == 1 },
			5*time.Second, 5*time.Millisecond, "step %d: no retry and no give-up", i)
	}
	require.Eventually(t, func() bool { return h.status("mailer").Failed == 1 }, 5*time.Second, 5*time.Millisecond)
	st := h.status("mailer")
	assert.Zero(t, st.Pending)
	assert.Contains(t, st.LastError, "gave up")
	n := len(r.all())
	assert.GreaterOrEqual(t, n, 8, "exponential: a few tries, not one per poll")
	assert.LessOrEqual(t, n, 40)
	ids := map[string]bool{}
	for _, g := range r.all() {
		ids[g.ID] = true
	}
	assert.Len(t, ids, 1)
}

func TestOrderPerContact(t *testing.T) {
	r := newReceiver(t)
	var fail atomic.Bool
	fail.Store(true)
	r.status = func(int) int {
		if fail.Load() {
			return 500
		}
		return 200
	}
	h := newHarness(t, defsFor(r), nil, nil)
	h.start()
	pid := h.contact("sam@example.nl")
	h.record(pid, cartAdd)
	h.clock.Advance(31 * time.Minute)
	require.Eventually(t, func() bool { return len(r.all()) >= 1 }, 5*time.Second, 5*time.Millisecond)
	h.record(pid, profile.Event{Type: profile.CartRemove, SKU: "veja-45"}) // exits while entered is undelivered
	time.Sleep(50 * time.Millisecond)
	fail.Store(false)
	h.clock.Advance(time.Hour)
	require.Eventually(t, func() bool { return h.status("mailer").Delivered == 2 }, 5*time.Second, 5*time.Millisecond)
	var ok []string
	for _, g := range r.all() {
		if g.Msg.Type != "" {
			ok = append(ok, g.Msg.Type)
		}
	}
	last := ok[len(ok)-1]
	assert.Equal(t, "segment.exited", last)
	for _, typ := range ok[:len(ok)-1] {
		assert.Equal(t, "segment.entered", typ, "the exit never overtakes the entry")
	}
}

func TestConsentFiltersContacts(t *testing.T) {
	r := newReceiver(t)
	defs := replaceURL(`
segments: [{id: shoppers, rule: {field: cart.items, gte: 1}}]
webhooks: [{id: mailer, url: "URL", segments: [shoppers], consent: marketing, fields: [first_name]}]
`, r.srv.URL)
	h := newHarness(t, defs, nil, nil)
	h.start()
	pid := h.contact("sam@example.nl")
	h.record(pid, cartAdd)
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, r.all(), "no marketing consent: not a member for this webhook")
	h.record(pid, profile.Event{Type: profile.ConsentEvent, Purposes: map[string]bool{"marketing": true}})
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "segment.entered", r.all()[0].Msg.Type)
	assert.Equal(t, map[string]any{"first_name": "Sam"}, r.all()[0].Msg.Data.Fields)
	h.record(pid, profile.Event{Type: profile.ConsentEvent, Purposes: map[string]bool{"marketing": false}})
	require.Eventually(t, func() bool { return len(r.all()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "segment.exited", r.all()[1].Msg.Type, "withdrawing consent leaves the audience")
	assert.Empty(t, r.all()[1].Msg.Data.Fields, "and sends no fields")
}

// TestDeadReceiverNeverBlocksWrites: while every worker waits on a receiver
// that does not answer, events keep being recorded.
func TestDeadReceiverNeverBlocksWrites(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	defer close(r.hold)
	defs := replaceURL(`
segments: [{id: shoppers, rule: {field: cart.items, gte: 1}}]
webhooks: [{id: mailer, url: "URL", segments: [shoppers]}]
`, r.srv.URL)
	h := newHarness(t, defs, nil, nil)
	h.start()
	first := h.contact("first@example.nl")
	h.record(first, cartAdd)
	require.Eventually(t, func() bool { return r.held.Load() >= 1 }, 5*time.Second, 5*time.Millisecond, "a worker is stuck on the receiver")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			pid := h.contact("c" + strconv.Itoa(i) + "@example.nl")
			h.record(pid, cartAdd)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writes wait behind a receiver that does not answer")
	}
	assert.Empty(t, r.all(), "the receiver answered nothing yet")
}

// faultStore fails the schedule made after the write, as a node killed
// right after acknowledging the event would never make it.
type faultStore struct {
	*embeddedstore.Store
	calls atomic.Int32
}

func (f *faultStore) ScheduleAt(ctx context.Context, pid string, t time.Time) error {
	if f.calls.Add(1)%2 == 0 {
		return context.Canceled
	}
	return f.Store.ScheduleAt(ctx, pid, t)
}

func TestDeliveredAfterCrashRightAfterTheWrite(t *testing.T) {
	r := newReceiver(t)
	defs := replaceURL(`
segments: [{id: shoppers, rule: {field: cart.items, gte: 1}}]
webhooks: [{id: mailer, url: "URL", segments: [shoppers]}]
`, r.srv.URL)
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c := newClock(time.Now().Truncate(time.Second))
	crashed := newHarness(t, defs, st, c)
	fs := &faultStore{Store: st}
	crashed.eng.cfg.Store = fs
	pid := crashed.contact("sam@example.nl")
	fs.calls.Store(0)
	crashed.record(pid, cartAdd) // acknowledged; the node "dies" before delivering anything
	assert.Empty(t, r.all())

	restarted := newHarness(t, defs, st, c)
	restarted.start()
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, r.all(), "due only after the grace period")
	c.Advance(31 * time.Second)
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "segment.entered", r.all()[0].Msg.Type)
}

func TestTwoEnginesDeliverEachChangeOnce(t *testing.T) {
	r := newReceiver(t)
	defs := replaceURL(`
segments: [{id: shoppers, rule: {field: cart.items, gte: 1}}]
webhooks: [{id: mailer, url: "URL", segments: [shoppers]}]
`, r.srv.URL)
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c := newClock(time.Now().Truncate(time.Second))
	a := newHarness(t, defs, st, c)
	b := newHarness(t, defs, st, c)
	a.start()
	b.start()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := a
			if i%2 == 1 {
				h = b
			}
			pid := h.contact("c" + strconv.Itoa(i) + "@example.nl")
			h.record(pid, cartAdd)
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return len(r.all()) >= n }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	c.Advance(time.Minute) // lease-free re-polls find nothing left
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, g := range r.all() {
		seen[g.ID]++
	}
	assert.Len(t, seen, n)
	for id, k := range seen {
		assert.Equal(t, 1, k, "%s delivered %d times", id, k)
	}
}
