package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
)

// Source returns the running definitions and the policy built from them
// (with this engine's Watcher); edge provides it.
type Source func() (*rules.Set, *profile.Policy)

// Config configures an Engine; zero values take the defaults.
type Config struct {
	Store   profile.TriggerStore
	Service *profile.Service // set by Start
	Signer  *Signer          // nil: definitions with webhooks are refused
	Now     func() time.Time
	Logger  *slog.Logger
	Client  *http.Client // default: 10 s timeout, no redirects followed

	Workers   int           // concurrent deliveries, default 4
	Poll      time.Duration // how often the schedule is polled, default 1 s
	Lease     time.Duration // how long a claim holds a profile, default 2 min
	Grace     time.Duration // a write's schedule before its Put, default 30 s
	RetryMin  time.Duration // first retry delay, default 5 s; doubles up to RetryMax
	RetryMax  time.Duration // default 1 h
	GiveUp    time.Duration // retries stop this long after the change, default 24 h
	UserAgent string
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Client == nil {
		c.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 5 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Hour
	}
	if c.GiveUp <= 0 {
		c.GiveUp = 24 * time.Hour
	}
	if c.UserAgent == "" {
		c.UserAgent = "etalage-webhooks/1"
	}
}

// Engine detects membership changes, schedules re-evaluations and delivers
// webhooks. Its workers are its own: a slow or dead receiver occupies them,
// never a decide or an events request.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	source Source
	queue  chan profile.Claim
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	openTill map[string]time.Time // per webhook: a recent failure defers attempts until then
	inflight map[string]bool      // profiles this node's workers are on

	metrics    *vm.Set
	deliveries *vm.Counter
	failures   *vm.Counter
	retries    *vm.Counter
	gaveUp     *vm.Counter
	rewatched  *vm.Counter
	oldest     sync.Map // webhook id → *oldestGauge
}

type oldestGauge struct{ secs float64 }

// New returns an Engine; Start runs it.
func New(cfg Config) *Engine {
	cfg.setDefaults()
	set := vm.NewSet()
	return &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		queue:      make(chan profile.Claim, cfg.Workers),
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		openTill:   map[string]time.Time{},
		inflight:   map[string]bool{},
		metrics:    set,
		deliveries: set.NewCounter(`etalage_webhook_deliveries_total{result="delivered"}`),
		failures:   set.NewCounter(`etalage_webhook_deliveries_total{result="error"}`),
		gaveUp:     set.NewCounter(`etalage_webhook_deliveries_total{result="failed"}`),
		retries:    set.NewCounter("etalage_webhook_retries_total"),
		rewatched:  set.NewCounter("etalage_webhook_reevaluations_total"),
	}
}

// CanSign reports whether a signing key was configured: definitions with
// webhooks need one.
func (e *Engine) CanSign() bool { return e.cfg.Signer != nil }

// Watcher returns the profile.Watcher for a definitions revision, or nil
// when it defines no webhooks (profiles then carry no trigger record).
func (e *Engine) Watcher(set *rules.Set) profile.Watcher {
	if len(set.Webhooks()) == 0 {
		return nil
	}
	return &watcher{e: e, set: set}
}

// Schedule makes the profile due: before the write at the earlier of its
// next flip and, when changes were queued, a grace period (the Put is done
// or failed by then; if the node died, another node or the restarted one
// finds the changes then); after the write, at once.
func (w *watcher) Schedule(ctx context.Context, pid string, wt profile.Watch, stored bool) error {
	e := w.e
	now := e.cfg.Now()
	if stored {
		if wt.Queued == 0 {
			return nil
		}
		if err := e.cfg.Store.ScheduleAt(ctx, pid, now); err != nil {
			return err
		}
		e.Kick()
		return nil
	}
	due := wt.Due
	if wt.Queued > 0 && (due.IsZero() || due.After(now.Add(e.cfg.Grace))) {
		due = now.Add(e.cfg.Grace)
	}
	if due.IsZero() {
		return nil
	}
	return e.cfg.Store.ScheduleAt(ctx, pid, due)
}

// Start runs the poller and the workers until Close; source gives the
// running definitions, svc reads and writes the profiles.
func (e *Engine) Start(source Source, svc *profile.Service) {
	e.source = source
	e.cfg.Service = svc
	e.wg.Add(1 + e.cfg.Workers)
	go e.poll()
	for range e.cfg.Workers {
		go e.work()
	}
}

// Close stops the engine, letting deliveries in flight finish (their
// claims are released; anything not done is due again).
func (e *Engine) Close() {
	e.once.Do(func() {
		close(e.done)
		if e.source != nil {
			e.wg.Wait()
		}
	})
}

// Kick makes the poller look at the schedule now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// WriteMetrics writes the engine's metrics in the Prometheus text format.
func (e *Engine) WriteMetrics(w io.Writer) { e.metrics.WritePrometheus(w) }

func (e *Engine) poll() {
	defer e.wg.Done()
	defer close(e.queue)
	t := time.NewTicker(e.cfg.Poll)
	defer t.Stop()
	lastStats := time.Time{}
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		case <-e.kick:
		}
		if time.Since(lastStats) > 10*time.Second {
			lastStats = time.Now()
			e.updateOldest()
		}
		for {
			free := cap(e.queue) - len(e.queue)
			if free == 0 {
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			claims, err := e.cfg.Store.ClaimDue(ctx, e.cfg.Now(), e.cfg.Lease, free)
			cancel()
			if err != nil {
				e.log.Warn("claim due profiles", "err", err)
				break
			}
			for _, c := range claims {
				e.queue <- c
			}
			if len(claims) < free {
				break
			}
		}
	}
}

// updateOldest refreshes the age of the oldest pending change per webhook.
func (e *Engine) updateOldest() {
	if e.source == nil {
		return
	}
	set, _ := e.source()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := e.cfg.Now()
	for _, wh := range set.Webhooks() {
		c, err := e.cfg.Store.TriggerCounts(ctx, wh.ID)
		if err != nil {
			return
		}
		g := e.gauge(wh.ID)
		if c.Oldest.IsZero() {
			g.secs = 0
		} else {
			g.secs = max(now.Sub(c.Oldest).Seconds(), 0)
		}
	}
}

func (e *Engine) gauge(hook string) *oldestGauge {
	if g, ok := e.oldest.Load(hook); ok {
		return g.(*oldestGauge)
	}
	g := &oldestGauge{}
	if prev, loaded := e.oldest.LoadOrStore(hook, g); loaded {
		return prev.(*oldestGauge)
	}
	e.metrics.NewGauge(`etalage_webhook_oldest_pending_seconds{webhook="`+hook+`"}`, func() float64 { return g.secs })
	return g
}

func (e *Engine) work() {
	defer e.wg.Done()
	for c := range e.queue {
		e.process(c)
	}
}

// process looks at one claimed profile: re-evaluates its watched segments
// (time may have changed them; a change is queued in the same write), then
// delivers what is due, in order per webhook, and releases the claim with
// the next moment it needs a look.
func (e *Engine) process(c profile.Claim) {
	// A claim whose lease ran out (a clock moved on, a worker stuck on a
	// slow receiver) can be claimed again while this node is still on it:
	// never work on one profile twice at once, which could send a later
	// change before an earlier one.
	e.mu.Lock()
	busy := e.inflight[c.PID]
	e.inflight[c.PID] = true
	e.mu.Unlock()
	if busy {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.cfg.Store.Release(rctx, c, e.cfg.Now().Add(time.Second))
		return
	}
	defer func() {
		e.mu.Lock()
		delete(e.inflight, c.PID)
		e.mu.Unlock()
	}()
	started := time.Now()
	budget := e.cfg.Lease / 2
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	_, pol := e.source()
	next := time.Time{}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		if err := e.cfg.Store.Release(rctx, c, next); err != nil {
			e.log.Warn("release a claimed profile", "err", err)
		}
	}()
	if pol.Watcher == nil {
		return // no webhooks any more: nothing to deliver to
	}
	e.rewatched.Inc()
	snap, err := e.cfg.Service.Rewatch(ctx, c.PID, pol)
	if err != nil {
		e.log.Warn("re-evaluate a profile for webhooks", "err", err)
		next = e.cfg.Now().Add(e.cfg.RetryMin)
		return
	}
	st := decodeState(snap.Trigger.Data)
	set, _ := e.source()
	results := map[string]attempt{} // change id → outcome
	blocked := map[string]bool{}    // webhooks whose head failed: later changes wait (order)
	for i := range st.Outbox {
		ch := &st.Outbox[i]
		if blocked[ch.Hook] {
			continue
		}
		now := e.cfg.Now()
		if ch.Next > now.UnixMilli() || time.Since(started) > budget/2 {
			blocked[ch.Hook] = true
			continue
		}
		wh, ok := set.Webhook(ch.Hook)
		if !ok {
			results[ch.ID] = attempt{hook: ch.Hook, drop: true, err: "the webhook is no longer defined"}
			continue
		}
		a := e.deliver(ctx, wh, ch, now)
		a.hook = ch.Hook
		results[ch.ID] = a
		if !a.ok && !a.drop {
			blocked[ch.Hook] = true
		}
	}
	var counts map[string]map[string]int64
	if len(results) > 0 || len(st.Dropped) > 0 {
		st, counts, err = e.settle(ctx, c.PID, pol, results)
		if err != nil {
			e.log.Warn("record webhook deliveries", "err", err)
		}
	}
	e.pending(ctx, c.PID, set, &st)
	for hook, m := range counts {
		for what, n := range m {
			if err := e.cfg.Store.CountTrigger(ctx, hook, what, n); err != nil {
				e.log.Warn("count webhook deliveries", "err", err)
			}
		}
	}
	next = st.due(e.cfg.Now().UnixMilli())
	if time.Since(started) > budget/2 && len(st.Outbox) > 0 {
		next = e.cfg.Now() // out of time: continue soon, on a fresh claim
	}
}

// attempt is the outcome of one delivery attempt.
type attempt struct {
	hook            string
	ok, drop, retry bool
	err             string
	next            int64 // unix ms of the next attempt
}

// deliver sends one change, or defers it when the webhook failed moments
// ago (a dead receiver then costs one request per period, not one per
// contact).
func (e *Engine) deliver(ctx context.Context, wh *rules.Webhook, ch *change, now time.Time) attempt {
	if now.Sub(time.UnixMilli(ch.At)) >= e.cfg.GiveUp {
		return attempt{drop: true, err: "gave up after " + e.cfg.GiveUp.String() + ": " + ch.Err}
	}
	e.mu.Lock()
	open := e.openTill[wh.ID]
	e.mu.Unlock()
	var err error
	if now.Before(open) {
		err = errors.New("not sent: the receiver failed moments ago")
	} else {
		err = e.send(ctx, wh, ch, now)
	}
	if err == nil {
		return attempt{ok: true}
	}
	tries := ch.Tries + 1
	wait := e.backoff(tries)
	if !now.Before(open) {
		e.mu.Lock()
		e.openTill[wh.ID] = now.Add(min(e.cfg.RetryMin, 30*time.Second))
		e.mu.Unlock()
	}
	nextAt := now.Add(wait)
	if nextAt.Sub(time.UnixMilli(ch.At)) > e.cfg.GiveUp {
		nextAt = time.UnixMilli(ch.At).Add(e.cfg.GiveUp) // one last try at the limit
	}
	return attempt{retry: true, err: err.Error(), next: nextAt.UnixMilli()}
}

// backoff is the delay before attempt tries+1: RetryMin doubling up to
// RetryMax, with jitter (half fixed, half random) so that the retries of
// many contacts spread out.
func (e *Engine) backoff(tries int) time.Duration {
	d := e.cfg.RetryMin
	for i := 1; i < tries && d < e.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// send POSTs one signed change; only a 2xx answer delivers it.
func (e *Engine) send(ctx context.Context, wh *rules.Webhook, ch *change, now time.Time) error {
	if e.cfg.Signer == nil {
		return errors.New("no --webhook-key: cannot sign")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(ch.Body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	ts := now.Truncate(time.Second)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", e.cfg.UserAgent)
	req.Header.Set("webhook-id", ch.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", e.cfg.Signer.Sign(ch.ID, ts, ch.Body))
	res, err := e.cfg.Client.Do(req)
	if err != nil {
		e.failures.Inc()
		return fmt.Errorf("POST: %w", errors.Unwrap(err))
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		e.failures.Inc()
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	e.deliveries.Inc()
	return nil
}

// settle writes the outcomes into the trigger record, on whatever version
// is stored now (an event may have queued more changes meanwhile), and
// returns the counts to add per webhook.
func (e *Engine) settle(ctx context.Context, pid string, pol *profile.Policy, results map[string]attempt) (state, map[string]map[string]int64, error) {
	var st state
	var dropped map[string]int64
	err := e.cfg.Service.UpdateTrigger(ctx, pid, pol, func(cur []byte) []byte {
		st = decodeState(cur)
		dropped = st.Dropped
		st.Dropped = nil
		kept := st.Outbox[:0]
		for _, ch := range st.Outbox {
			a, ok := results[ch.ID]
			switch {
			case !ok:
			case a.ok || a.drop:
				continue
			case a.retry:
				ch.Tries++
				ch.Next = a.next
				ch.Err = a.err
			}
			kept = append(kept, ch)
		}
		st.Outbox = kept
		return st.encode()
	})
	if err != nil {
		return st, nil, err
	}
	now := e.cfg.Now()
	counts := map[string]map[string]int64{}
	add := func(hook, what string, n int64) {
		if counts[hook] == nil {
			counts[hook] = map[string]int64{}
		}
		counts[hook][what] += n
	}
	for hook, n := range dropped {
		add(hook, "failed", n)
		e.gaveUp.Add(int(n))
	}
	for _, a := range results {
		switch {
		case a.ok:
			add(a.hook, "delivered", 1)
		case a.drop:
			add(a.hook, "failed", 1)
			e.gaveUp.Inc()
			e.log.Warn("webhook change dropped", "webhook", a.hook, "why", a.err)
			_ = e.cfg.Store.TriggerError(ctx, a.hook, a.err, now)
		case a.retry:
			add(a.hook, "retries", 1)
			e.retries.Inc()
			_ = e.cfg.Store.TriggerError(ctx, a.hook, a.err, now)
		}
	}
	return st, counts, nil
}

// pending records, per webhook, whether the contact still waits for a
// delivery and since when; every webhook of the running definitions is
// set, so that an erased profile leaves no pending entry behind.
func (e *Engine) pending(ctx context.Context, pid string, set *rules.Set, st *state) {
	oldest := map[string]int64{}
	for _, ch := range st.Outbox {
		if o, ok := oldest[ch.Hook]; !ok || ch.At < o {
			oldest[ch.Hook] = ch.At
		}
	}
	for _, wh := range set.Webhooks() {
		var since time.Time
		if at, ok := oldest[wh.ID]; ok {
			since = time.UnixMilli(at)
		}
		if err := e.cfg.Store.SetPending(ctx, wh.ID, pid, since); err != nil {
			e.log.Warn("record pending webhook changes", "err", err)
			return
		}
	}
}

// Status returns webhook id's delivery counts across every node.
func (e *Engine) Status(ctx context.Context, id string) (profile.TriggerCounts, error) {
	c, err := e.cfg.Store.TriggerCounts(ctx, id)
	if err != nil {
		return c, fmt.Errorf("webhook status: %w", err)
	}
	return c, nil
}

// Sign returns the webhook-signature of a payload, "" without a key (the
// demo receiver checks deliveries with it).
func (e *Engine) Sign(id string, ts time.Time, body []byte) string {
	if e.cfg.Signer == nil {
		return ""
	}
	return e.cfg.Signer.Sign(id, ts, body)
}
