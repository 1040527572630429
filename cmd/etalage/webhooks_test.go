package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const e2eWebhookKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookMsg is one delivery the test receiver got.
type hookMsg struct {
	ID, Timestamp string
	Type, Segment string
	Email         string
	Fields        map[string]any
}

// hookReceiver is a real local HTTP receiver. It verifies every delivery
// with the Standard Webhooks reference library and records it; answer(n)
// gives the status of the n-th request (from 1), and while hold is set a
// request waits for it to be closed.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	msgs   []hookMsg
	bad    []string
	answer func(n int) int
	hold   chan struct{}
	held   atomic.Int32
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{answer: func(int) int { return 200 }}
	wh, err := standardwebhooks.NewWebhook(e2eWebhookKey)
	require.NoError(t, err)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			r.held.Add(1)
			<-hold
		}
		// The nodes run on a frozen clock from the past: the timestamp is
		// checked against it below, not against the real clock.
		if err := wh.VerifyIgnoringTimestamp(body, req.Header); err != nil {
			r.mu.Lock()
			r.bad = append(r.bad, err.Error())
			r.mu.Unlock()
			w.WriteHeader(401)
			return
		}
		var p struct {
			Type string `json:"type"`
			Data struct {
				Segment string `json:"segment"`
				Contact struct {
					Email string `json:"email"`
				} `json:"contact"`
				Fields map[string]any `json:"fields"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &p)
		r.mu.Lock()
		r.msgs = append(r.msgs, hookMsg{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Type: p.Type, Segment: p.Data.Segment, Email: p.Data.Contact.Email, Fields: p.Data.Fields})
		n := len(r.msgs)
		answer := r.answer
		r.mu.Unlock()
		w.WriteHeader(answer(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) all() []hookMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	assertNoBadSignatures(r.bad)
	return append([]hookMsg(nil), r.msgs...)
}

func assertNoBadSignatures(bad []string) {
	if len(bad) > 0 {
		panic("deliveries that do not verify: " + strings.Join(bad, "; "))
	}
}

// webhookDefs writes a definitions file whose webhook points at r.
func webhookDefs(t *testing.T, r *hookReceiver, segments string) string {
	doc := `segments:
  - {id: cart-abandoners, rule: {field: cart.abandoned_for, gte: 30m}}
  - {id: carts, rule: {field: cart.items, gte: 1}}
webhooks:
  - {id: mailer, url: "` + r.srv.URL + `/hooks/etalage", segments: [` + segments + `], fields: [first_name]}
`
	path := t.TempDir() + "/defs.yaml"
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// contactEvents sends events for a contact as the shop backend does,
// retrying a 503 (the store did not answer in time: nothing was stored)
// as the backend would.
func contactEvents(t testing.TB, n *node, email, events string) {
	t.Helper()
	for try := 0; ; try++ {
		status, m, _ := newBrowser(t).post(t, "http://"+n.public+"/v1/events", `{"contact":{"email":"`+email+`"},"events":[`+events+`]}`, "Authorization", "Bearer "+e2eAPIKey)
		if status == 503 && try < 20 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		require.Equal(t, 202, status, "%v", m)
		return
	}
}

func advance(t testing.TB, n *node, d string) {
	t.Helper()
	code, m := adminDo(t, n, "POST", "/admin/v1/clock", `{"advance":"`+d+`"}`)
	require.Equal(t, 200, code, "%v", m)
}

const (
	cartAddJSON  = `{"type":"cart_add","sku":"veja-45","price":120}`
	purchaseJSON = `{"type":"purchase","order_id":"o-1","items":[{"sku":"veja-45","price":120}]}`
	nameJSON     = `{"type":"form_submit","form":"account","fields":{"first_name":"Sam"}}`
)

// TestWebhookCartAbandoned: a contact who adds to cart and leaves gets
// segment.entered for cart abandoners once 30 minutes have passed (on the
// node's test clock), within seconds of that moment, and segment.exited
// after buying; the status counts both; the signatures verify with the
// Standard Webhooks reference library.
func TestWebhookCartAbandoned(t *testing.T) {
	r := newHookReceiver(t)
	n := startNode(t, "embedded:"+t.TempDir(), "--definitions", webhookDefs(t, r, "cart-abandoners"), "--webhook-key", e2eWebhookKey)
	contactEvents(t, n, "sam@example.nl", nameJSON+","+cartAddJSON)
	advance(t, n, "29m")
	time.Sleep(2 * time.Second)
	assert.Empty(t, r.all(), "not yet abandoned for 30 minutes")
	advance(t, n, "1m")
	moved := time.Now()
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, time.Minute, 50*time.Millisecond)
	t.Logf("segment.entered arrived %v after the clock passed the 30 minutes", time.Since(moved).Round(time.Millisecond))
	got := r.all()[0]
	assert.Equal(t, hookMsg{ID: got.ID, Timestamp: got.Timestamp, Type: "segment.entered", Segment: "cart-abandoners", Email: "sam@example.nl", Fields: map[string]any{"first_name": "Sam"}}, got)
	_, clock := adminDo(t, n, "GET", "/admin/v1/clock", "")
	now, err := time.Parse(time.RFC3339, clock["now"].(string))
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatInt(now.Unix(), 10), got.Timestamp, "webhook-timestamp is the node's clock")

	contactEvents(t, n, "sam@example.nl", purchaseJSON)
	require.Eventually(t, func() bool { return len(r.all()) == 2 }, time.Minute, 50*time.Millisecond)
	assert.Equal(t, "segment.exited", r.all()[1].Type)
	assert.NotEqual(t, got.ID, r.all()[1].ID)

	require.Eventually(t, func() bool {
		_, st := adminDo(t, n, "GET", "/admin/v1/webhooks/mailer", "")
		return st["delivered"] == 2.0 && st["pending"] == 0.0
	}, 10*time.Second, 50*time.Millisecond)
	code, _ := adminDo(t, n, "GET", "/admin/v1/webhooks/nope", "")
	assert.Equal(t, 404, code)
	assert.Contains(t, metricsText(t, n), `etalage_webhook_deliveries_total{result="delivered"} 2`)
}

func metricsText(t testing.TB, n *node) string {
	resp, err := http.Get("http://" + n.admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestWebhookRetriesKeepTheID: a receiver answering 500 three times and
// then 200 gets the same webhook-id four times, and nothing is lost.
func TestWebhookRetriesKeepTheID(t *testing.T) {
	r := newHookReceiver(t)
	r.answer = func(n int) int {
		if n <= 3 {
			return 500
		}
		return 200
	}
	n := startNode(t, "embedded:"+t.TempDir(), "--definitions", webhookDefs(t, r, "carts"), "--webhook-key", e2eWebhookKey)
	contactEvents(t, n, "sam@example.nl", cartAddJSON)
	for i := 1; i <= 3; i++ {
		require.Eventually(t, func() bool { return len(r.all()) == i }, 30*time.Second, 20*time.Millisecond)
		advance(t, n, "2m") // past the backoff (5 s doubling, on the node's clock)
	}
	require.Eventually(t, func() bool { return len(r.all()) == 4 }, 30*time.Second, 20*time.Millisecond)
	got := r.all()
	for _, m := range got {
		assert.Equal(t, got[0].ID, m.ID, "every retry keeps its webhook-id")
		assert.Equal(t, "segment.entered", m.Type)
	}
	require.Eventually(t, func() bool {
		_, st := adminDo(t, n, "GET", "/admin/v1/webhooks/mailer", "")
		return st["delivered"] == 1.0 && st["retries"] == 3.0 && st["pending"] == 0.0 && st["last_error"] == "HTTP 500"
	}, 10*time.Second, 50*time.Millisecond)
	advance(t, n, "1h")
	time.Sleep(1500 * time.Millisecond)
	assert.Len(t, r.all(), 4, "delivered once: no more attempts")
}

// TestWebhookSurvivesSIGKILL: the node is killed with SIGKILL right after
// acknowledging the event, before any delivery succeeded; restarted on the
// same data, it delivers the change (with the same webhook-id as the
// attempt that never got an answer).
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	r := newHookReceiver(t)
	r.hold = make(chan struct{})
	dir := t.TempDir()
	defs := webhookDefs(t, r, "carts")
	n := startNode(t, "embedded:"+dir, "--definitions", defs, "--webhook-key", e2eWebhookKey)
	contactEvents(t, n, "sam@example.nl", cartAddJSON)
	n.killed = true
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGKILL))
	n.cmd.Wait()
	r.mu.Lock()
	close(r.hold)
	r.hold = nil
	r.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	before := len(r.all())
	assert.Zero(t, before, "nothing was acknowledged by the receiver before the kill")

	n2 := startNode(t, "embedded:"+dir, "--definitions", defs, "--webhook-key", e2eWebhookKey)
	advance(t, n2, "3m") // past the dead node's claim on the profile
	require.Eventually(t, func() bool { return len(r.all()) >= 1 }, 30*time.Second, 50*time.Millisecond)
	got := r.all()
	assert.Equal(t, "segment.entered", got[0].Type)
	assert.Equal(t, "sam@example.nl", got[0].Email)
}

// TestWebhookRedisTwoNodes: two nodes on one Redis deliver each change
// exactly once, and a node killed right after acknowledging has its change
// delivered by the other node.
func TestWebhookRedisTwoNodes(t *testing.T) {
	addr := redistest.Server(t)
	r := newHookReceiver(t)
	defs := webhookDefs(t, r, "carts")
	a := startNode(t, "redis://"+addr+"/0", "--definitions", defs, "--webhook-key", e2eWebhookKey)
	b := startNode(t, "redis://"+addr+"/0", "--definitions", defs, "--webhook-key", e2eWebhookKey)
	const contacts, senders = 40, 8
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < contacts; i += senders {
				n := a
				if i%2 == 1 {
					n = b
				}
				contactEvents(t, n, "c"+strconv.Itoa(i)+"@example.nl", cartAddJSON)
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return len(r.all()) >= contacts }, time.Minute, 50*time.Millisecond)
	advance(t, a, "5m")
	advance(t, b, "5m")
	time.Sleep(2 * time.Second)
	seen := map[string]int{}
	emails := map[string]bool{}
	for _, m := range r.all() {
		seen[m.ID]++
		emails[m.Email] = true
	}
	assert.Len(t, seen, contacts, "one change per contact")
	assert.Len(t, emails, contacts)
	for id, k := range seen {
		assert.Equal(t, 1, k, "%s delivered %d times", id, k)
	}

	// Node a acknowledges an event and is killed before delivering it.
	r.mu.Lock()
	r.hold = make(chan struct{})
	r.mu.Unlock()
	contactEvents(t, a, "last@example.nl", cartAddJSON)
	a.killed = true
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	a.cmd.Wait()
	r.mu.Lock()
	close(r.hold)
	r.hold = nil
	r.mu.Unlock()
	advance(t, b, "3m") // past a's claim, if it had made one
	require.Eventually(t, func() bool {
		for _, m := range r.all() {
			if m.Email == "last@example.nl" {
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond, "the other node delivers the dead node's change")
}

// TestExportStreams100kContacts: an export of 100,000 contacts streams
// every one of them while the node's memory stays bounded (measured as the
// growth of its peak resident set, VmHWM).
func TestExportStreams100kContacts(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 profiles")
	}
	addr := redistest.Server(t)
	const total = 100_000
	seed(t, "redis://"+addr+"/0", total)
	r := newHookReceiver(t)
	n := startNode(t, "redis://"+addr+"/0", "--definitions", webhookDefs(t, r, "carts"), "--webhook-key", e2eWebhookKey, "--cache-size", "0")
	pid := n.cmd.Process.Pid
	export := func(query string) (rows int, last string) {
		req, _ := http.NewRequest("GET", "http://"+n.admin+"/admin/v1/segments/carts/members?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			rows++
			last = sc.Text()
		}
		require.NoError(t, sc.Err())
		return rows, last
	}
	// A small export first, so that the baseline includes the code paths.
	rows, _ := export("format=csv&fields=first_name&consent=nobody")
	require.Equal(t, 1, rows, "only the header: nobody gave that consent")
	base := hwmKB(pid)
	start := time.Now()
	rows, last := export("format=ndjson&fields=first_name,city")
	took := time.Since(start)
	peak := hwmKB(pid)
	assert.Equal(t, total, rows)
	assert.NotContains(t, last, "error")
	t.Logf("export of %d contacts: %v, peak RSS %d MB before, %d MB after (grew %d MB)", rows, took.Round(time.Millisecond), base/1024, peak/1024, (peak-base)/1024)
	// Holding the segment would take hundreds of MB (a decoded profile is
	// a few KB); streaming stays within a few pages.
	assert.Less(t, peak-base, int64(64*1024), "the export grew the node's peak memory by %d KB", peak-base)

	// Resuming from a row's cursor continues right after it.
	var row struct {
		Contact map[string]string `json:"contact"`
		Fields  map[string]any    `json:"fields"`
		Cursor  string            `json:"cursor"`
	}
	require.NoError(t, json.Unmarshal([]byte(last), &row))
	assert.Equal(t, "Sam", row.Fields["first_name"])
	rest, _ := export("format=ndjson&cursor=" + row.Cursor)
	assert.Zero(t, rest, "nothing after the last row")
}

// seed writes n contacts with a cart straight into the store, the way the
// node would have written them, in parallel.
func seed(t *testing.T, url string, n int) {
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{PoolSize: 16, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer st.Close()
	now, _ := time.Parse(time.RFC3339, e2eNow)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				p := &profile.Profile{
					ID: profile.NewID(), Known: true, Email: fmt.Sprintf("c%d@example.nl", i), FirstSeen: now.Unix(), LastSeen: now.Unix(),
					Fields: map[string]profile.Field{"first_name": {Value: profile.Value{Kind: profile.KindString, Str: "Sam"}}, "city": {Value: profile.Value{Kind: profile.KindString, Str: "Delft"}}},
					Cart:   profile.Cart{Items: []profile.CartItem{{SKU: "veja-45", Price: 120, Quantity: 1}}, UpdatedAt: now.Unix()},
				}
				if err := st.Put(context.Background(), p.ID, []profile.Write{{Expect: 0, Version: 1, Data: profile.Encode(nil, p), TTL: time.Hour}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("seeded %d contacts in %v", n, time.Since(start).Round(time.Millisecond))
}

func hwmKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}
