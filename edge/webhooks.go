package edge

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"html"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// Triggers is the webhook delivery cmd wires in (package trigger): edge
// gives each definitions revision its Watcher and reports on deliveries.
type Triggers interface {
	// Watcher returns the profile.Watcher of a revision; nil without webhooks.
	Watcher(set *rules.Set) profile.Watcher
	// CanSign reports whether a --webhook-key is configured.
	CanSign() bool
	// Sign returns the webhook-signature of a payload ("" without a key).
	Sign(id string, ts time.Time, body []byte) string
	// Status returns one webhook's counts across nodes.
	Status(ctx context.Context, id string) (profile.TriggerCounts, error)
	// WriteMetrics writes the delivery metrics.
	WriteMetrics(w io.Writer)
}

// Clock is a frozen clock (--now) that an admin can move forward, so that a
// demo or a test can see time-driven triggers (an abandoned cart) fire.
type Clock interface {
	Advance(d time.Duration) time.Time
}

// webhookProblem is the validation problem of a document with webhooks on
// a node that cannot sign them; nil when it can.
func (s *Server) webhookProblem(set *rules.Set) error {
	if len(set.Webhooks()) == 0 || (s.cfg.Triggers != nil && s.cfg.Triggers.CanSign()) {
		return nil
	}
	return &rules.ValidationError{Problems: []rules.Problem{{Path: "webhooks", Message: "webhooks need a signing key: start every node with --webhook-key whsec_… (ETALAGE_WEBHOOK_KEY)"}}}
}

// Current returns the running definitions and the policy built from them;
// package trigger reads them through this.
func (s *Server) Current() (*rules.Set, *profile.Policy) {
	d := s.defs.Load()
	return d.set, d.policy
}

// Profiles returns the profile service the server writes with, so that
// webhook delivery queues behind the same per-profile locks.
func (s *Server) Profiles() *profile.Service { return s.profiles }

// webhookStatus is the answer of GET /admin/v1/webhooks/{id}.
type webhookStatus struct {
	ID            string     `json:"id"`
	URL           string     `json:"url"`
	Segments      []string   `json:"segments"`
	Consent       string     `json:"consent,omitempty"`
	Fields        []string   `json:"fields"`
	Pending       int64      `json:"pending"`
	OldestPending *time.Time `json:"oldest_pending"`
	Delivered     int64      `json:"delivered"`
	Failed        int64      `json:"failed"`
	Retries       int64      `json:"retries"`
	LastError     *string    `json:"last_error"`
	LastErrorAt   *time.Time `json:"last_error_at"`
}

// serveWebhooks answers GET /admin/v1/webhooks (every webhook with its
// counts) and GET /admin/v1/webhooks/{id}: pending (contacts with changes
// not yet delivered), the oldest of those, delivered, failed (given up after
// 24 hours or dropped) and retries, counted across every node, and the last
// error.
func (s *Server) serveWebhooks(ctx *fasthttp.RequestCtx, id string) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	d := s.defs.Load()
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	defer cancel()
	status := func(wh *rules.Webhook) (webhookStatus, error) {
		st := webhookStatus{ID: wh.ID, URL: wh.URL, Segments: wh.Segments, Consent: wh.Consent, Fields: append([]string{}, wh.Fields...)}
		if s.cfg.Triggers == nil {
			return st, nil
		}
		c, err := s.cfg.Triggers.Status(cctx, wh.ID)
		if err != nil {
			return st, err
		}
		st.Pending, st.Delivered, st.Failed, st.Retries = c.Pending, c.Delivered, c.Failed, c.Retries
		if !c.Oldest.IsZero() {
			t := c.Oldest.UTC()
			st.OldestPending = &t
		}
		if c.LastError != "" {
			st.LastError = &c.LastError
			t := c.LastAt.UTC()
			st.LastErrorAt = &t
		}
		return st, nil
	}
	if id == "" {
		out := []webhookStatus{}
		for _, wh := range d.set.Webhooks() {
			st, err := status(&wh)
			if err != nil {
				s.writeError(ctx, err)
				return
			}
			out = append(out, st)
		}
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"webhooks": out})
		return
	}
	wh, ok := d.set.Webhook(id)
	if !ok {
		s.writeError(ctx, errorf(ECodeNotFound, "no webhook "+quote(id)))
		return
	}
	st, err := status(wh)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, st)
}

// serveClock answers POST /admin/v1/clock {"advance": "31m"} when the clock
// is frozen with --now: it moves every reader of this node's clock forward
// (never back) and answers the new time.
func (s *Server) serveClock(ctx *fasthttp.RequestCtx) {
	if s.cfg.Clock == nil {
		s.writeError(ctx, errorf(ECodeNotFound, "the clock moves only when frozen with --now"))
		return
	}
	if ctx.IsGet() {
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"now": s.cfg.Now().Format(time.RFC3339)})
		return
	}
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "GET, POST")
		return
	}
	var req struct {
		Advance string `json:"advance"`
	}
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(ctx, errorf(ECodeInvalid, `clock: {"advance": "31m"}`))
		return
	}
	d, ok := rules.ParseDuration(req.Advance)
	if !ok || d <= 0 || d > 366*24*time.Hour {
		s.writeError(ctx, errorf(ECodeInvalid, "advance: a duration like 31m, 2h or 14d, at most a year"))
		return
	}
	now := s.cfg.Clock.Advance(d)
	s.log.Info("clock advanced", "by", req.Advance, "now", now.Format(time.RFC3339))
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"now": now.Format(time.RFC3339)})
}

// demoInbox keeps the last webhook deliveries the demo receiver got.
type demoInbox struct {
	mu   sync.Mutex
	msgs []demoMessage
}

type demoMessage struct {
	At       time.Time       `json:"received_at"`
	ID       string          `json:"webhook_id"`
	Verified bool            `json:"verified"`
	Body     json.RawMessage `json:"body"`
}

const demoInboxSize = 50

// DemoReceiverPath is where the demo definitions' webhook points, on the
// admin listener.
const DemoReceiverPath = "/demo/webhooks"

// serveDemoReceiver is the small receiver of the demo: POST /demo/webhooks
// takes a delivery (signature checked, no token: the sender has none); GET
// shows what arrived, newest first, as HTML or, with ?format=json, as JSON
// — at /demo/webhooks with the admin token, or at /admin/v1/demo/webhooks
// also with the console's session.
func (s *Server) serveDemoReceiver(ctx *fasthttp.RequestCtx, authorized bool) {
	if ctx.IsPost() {
		body := append([]byte(nil), ctx.PostBody()...)
		id := string(ctx.Request.Header.Peek("webhook-id"))
		tsHeader := string(ctx.Request.Header.Peek("webhook-timestamp"))
		sig := string(ctx.Request.Header.Peek("webhook-signature"))
		verified := false
		if ts, err := strconv.ParseInt(tsHeader, 10, 64); err == nil && s.cfg.Triggers != nil && id != "" {
			want := s.cfg.Triggers.Sign(id, time.Unix(ts, 0), body)
			for _, got := range strings.Fields(sig) {
				if want != "" && hmac.Equal([]byte(got), []byte(want)) {
					verified = true
				}
			}
		}
		if !verified {
			s.writeError(ctx, errorf(ECodeUnauthorized, "webhook signature does not verify"))
			return
		}
		if !json.Valid(body) {
			s.writeError(ctx, errorf(ECodeInvalid, "not JSON"))
			return
		}
		s.inbox.mu.Lock()
		s.inbox.msgs = append(s.inbox.msgs, demoMessage{At: time.Now().UTC(), ID: id, Verified: verified, Body: body})
		if len(s.inbox.msgs) > demoInboxSize {
			s.inbox.msgs = s.inbox.msgs[len(s.inbox.msgs)-demoInboxSize:]
		}
		s.inbox.mu.Unlock()
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET, POST")
		return
	}
	if !authorized {
		s.writeError(ctx, errorf(ECodeUnauthorized, "the demo inbox needs the admin token"))
		return
	}
	s.inbox.mu.Lock()
	msgs := make([]demoMessage, len(s.inbox.msgs))
	for i, m := range s.inbox.msgs {
		msgs[len(msgs)-1-i] = m
	}
	s.inbox.mu.Unlock()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if string(ctx.QueryArgs().Peek("format")) == "json" {
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"messages": msgs})
		return
	}
	var b strings.Builder
	b.WriteString(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>etalage demo webhook inbox</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto}</style>
<h1>Demo webhook inbox</h1><p>What the demo definitions' webhook delivered to this node, newest first (the last 50; refreshes every 5 seconds). Signatures are checked with --webhook-key.</p>`)
	if len(msgs) == 0 {
		b.WriteString(`<p><em>Nothing yet.</em> Identify as a contact in the demo shop, put something in the cart and leave it for 30 minutes (with <code>--now</code>: <code>curl -X POST -H 'Authorization: Bearer …' -d '{"advance":"31m"}' http://` + html.EscapeString(string(ctx.Host())) + `/admin/v1/clock</code>).</p>`)
	}
	for _, m := range msgs {
		pretty, _ := json.MarshalIndent(m.Body, "", "  ")
		b.WriteString("<h3>" + html.EscapeString(m.At.Format(time.RFC3339)) + " · " + html.EscapeString(m.ID) + "</h3><pre>" + html.EscapeString(string(pretty)) + "</pre>")
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBodyString(b.String())
}
