package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/trigger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp/fasthttputil"
)

const hookDefs = `segments:
  - {id: carts, rule: {field: cart.items, gte: 1}}
  - {id: mobile, rule: {field: context.device, eq: mobile}}
webhooks:
  - {id: mailer, url: "https://mailer.example/hooks", segments: [carts], fields: [first_name]}
`

// triggerHarness is a harness with a trigger engine on its store (not
// started: these tests look at the HTTP face, package trigger at
// deliveries).
func triggerHarness(tb testing.TB, mutate func(*Config)) *harness {
	signer, err := trigger.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(tb, err)
	st, err := embeddedstore.Open(tb.TempDir())
	require.NoError(tb, err)
	return newHarnessWithStore(tb, st, func(c *Config) {
		c.Triggers = trigger.New(trigger.Config{Store: st, Signer: signer, Now: c.Now})
		if mutate != nil {
			mutate(c)
		}
	})
}

func TestDefinitionsWithWebhooksNeedAKey(t *testing.T) {
	h := newHarness(t, nil)
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", hookDefs)
	require.Equal(t, 422, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), `"path":"webhooks"`)
	assert.Contains(t, string(r.body), "--webhook-key")

	h = triggerHarness(t, nil)
	r = h.adminCall(t, "PUT", "/admin/v1/definitions", hookDefs)
	require.Equal(t, 200, r.status, "%s", r.body)
	r = h.adminCall(t, "PUT", "/admin/v1/definitions", strings.Replace(hookDefs, "segments: [carts]", "segments: [mobile]", 1))
	require.Equal(t, 422, r.status)
	assert.Contains(t, string(r.body), "webhooks[0].segments[0]")
}

func TestWebhookStatusRoute(t *testing.T) {
	h := triggerHarness(t, nil)
	require.Equal(t, 200, h.adminCall(t, "PUT", "/admin/v1/definitions", hookDefs).status)
	r := h.adminCall(t, "GET", "/admin/v1/webhooks/mailer", "")
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.JSONEq(t, `{"id":"mailer","url":"https://mailer.example/hooks","segments":["carts"],"fields":["first_name"],
		"pending":0,"oldest_pending":null,"delivered":0,"failed":0,"retries":0,"last_error":null,"last_error_at":null}`, string(r.body))
	r = h.adminCall(t, "GET", "/admin/v1/webhooks", "")
	require.Equal(t, 200, r.status)
	assert.Len(t, r.json(t)["webhooks"], 1)
	assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/webhooks/nope", "").status)
	assert.Equal(t, 405, h.adminCall(t, "POST", "/admin/v1/webhooks/mailer", "").status)
	assert.Equal(t, 401, call(t, h.admin, "GET", "/admin/v1/webhooks/mailer", "", nil).status)
}

// contactCart records a cart (and fields) for a contact as the shop backend does.
func contactCart(tb testing.TB, h *harness, email, extra string) {
	tb.Helper()
	body := `{"contact":{"email":"` + email + `"},"events":[{"type":"cart_add","sku":"a","price":10}` + extra + `]}`
	r := call(tb, h.public, "POST", "/v1/events", body, map[string]string{"Authorization": "Bearer " + testAPIKey})
	require.Equal(tb, 202, r.status, "%s", r.body)
}

func TestExportStreamsContacts(t *testing.T) {
	h := triggerHarness(t, nil)
	require.Equal(t, 200, h.adminCall(t, "PUT", "/admin/v1/definitions", hookDefs).status)
	contactCart(t, h, "ann@example.nl", `,{"type":"form_submit","form":"f","fields":{"first_name":"=HYPERLINK(\"http://evil\")","city":"Delft"}}`)
	contactCart(t, h, "bob@example.nl", `,{"type":"consent","purposes":{"marketing":true}}`)
	for i := range 5 {
		contactCart(t, h, "c"+strconv.Itoa(i)+"@example.nl", "")
	}
	// An anonymous visitor with a cart is in the segment but no contact.
	h.decide(t, "", `{"slots":[],"events":[{"type":"cart_add","sku":"x"}]}`)

	r := h.adminCall(t, "GET", "/admin/v1/segments/carts/members?format=csv&fields=email,first_name,city", "")
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, "text/csv; charset=utf-8", r.headers["Content-Type"])
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 1+7, "a header and the seven contacts; the anonymous visitor is not exported")
	assert.Equal(t, []string{"email", "customer_id", "first_name", "city", "cursor"}, recs[0])
	for _, rec := range recs[1:] {
		if rec[0] == "ann@example.nl" {
			assert.Equal(t, `'=HYPERLINK("http://evil")`, rec[2], "a formula is defused for spreadsheets")
			assert.Equal(t, "Delft", rec[3])
		}
	}

	r = h.adminCall(t, "GET", "/admin/v1/segments/carts/members?format=ndjson&fields=first_name&consent=marketing", "")
	require.Equal(t, 200, r.status)
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	require.Len(t, lines, 1, "only bob gave marketing consent")
	var row struct {
		Contact map[string]string `json:"contact"`
		Fields  map[string]any    `json:"fields"`
		Cursor  string            `json:"cursor"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &row))
	assert.Equal(t, map[string]string{"email": "bob@example.nl"}, row.Contact)
	assert.Empty(t, row.Fields)

	// Resuming from the third row's cursor gives the rows after it.
	r = h.adminCall(t, "GET", "/admin/v1/segments/carts/members?format=ndjson", "")
	all := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	require.Len(t, all, 7)
	require.NoError(t, json.Unmarshal([]byte(all[2]), &row))
	r = h.adminCall(t, "GET", "/admin/v1/segments/carts/members?format=ndjson&cursor="+row.Cursor, "")
	rest := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	assert.Equal(t, all[3:], rest)

	many := []string{}
	for i := range 40 {
		many = append(many, "f"+strconv.Itoa(i))
	}
	for _, bad := range []string{"format=xml", "format=csv&fields=a;b", "format=csv&fields=" + strings.Join(many, ","), "format=csv&consent=a b", "format=ndjson&cursor=%%%"} {
		r := h.adminCall(t, "GET", "/admin/v1/segments/carts/members?"+bad, "")
		assert.Equal(t, 400, r.status, bad)
	}
	assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/segments/ghost/members?format=csv", "").status)
	// The JSON paging stays.
	r = h.adminCall(t, "GET", "/admin/v1/segments/carts/members?limit=100", "")
	require.Equal(t, 200, r.status)
	assert.Len(t, r.json(t)["members"], 8, "JSON paging lists every profile in the segment, contacts or not")
}

func TestClockMovesOnlyWhenFrozen(t *testing.T) {
	h := newHarness(t, nil)
	assert.Equal(t, 404, h.adminCall(t, "POST", "/admin/v1/clock", `{"advance":"31m"}`).status)

	now := testNow
	c := &testClock{t: &now}
	h = newHarness(t, func(cfg *Config) { cfg.Clock, cfg.Now = c, c.Now })
	r := h.adminCall(t, "POST", "/admin/v1/clock", `{"advance":"31m"}`)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, testNow.Add(31*time.Minute).Format(time.RFC3339), r.json(t)["now"])
	for _, bad := range []string{`{"advance":"-5m"}`, `{"advance":"soon"}`, `{"back":"5m"}`, `{"advance":"400d"}`} {
		assert.Equal(t, 400, h.adminCall(t, "POST", "/admin/v1/clock", bad).status, bad)
	}
	assert.Equal(t, 401, call(t, h.admin, "POST", "/admin/v1/clock", `{"advance":"1m"}`, nil).status)
}

type testClock struct{ t *time.Time }

func (c *testClock) Now() time.Time { return *c.t }
func (c *testClock) Advance(d time.Duration) time.Time {
	*c.t = c.t.Add(d)
	return *c.t
}

func TestDemoReceiver(t *testing.T) {
	h := triggerHarness(t, nil)
	body := `{"type":"segment.entered","timestamp":"2026-11-24T12:00:00Z","data":{"segment":"cart-abandoners","contact":{"email":"<b>sam</b>@example.nl"},"fields":{}}}`
	ts := time.Unix(1795000000, 0)
	sig := h.srv.cfg.Triggers.Sign("msg_1", ts, []byte(body))
	hdr := func(sig string) map[string]string {
		return map[string]string{"webhook-id": "msg_1", "webhook-timestamp": strconv.FormatInt(ts.Unix(), 10), "webhook-signature": sig}
	}
	assert.Equal(t, 401, call(t, h.admin, "POST", DemoReceiverPath, body, hdr("v1,AAAA")).status, "a bad signature is refused")
	assert.Equal(t, 401, call(t, h.admin, "POST", DemoReceiverPath, body+" ", hdr(sig)).status, "so is a changed body")
	assert.Equal(t, 204, call(t, h.admin, "POST", DemoReceiverPath, body, hdr("v0,x "+sig)).status)
	assert.Equal(t, 401, call(t, h.admin, "GET", DemoReceiverPath, "", nil).status, "reading the inbox needs the token")
	r := h.adminCall(t, "GET", DemoReceiverPath, "")
	require.Equal(t, 200, r.status)
	assert.Contains(t, string(r.body), "msg_1")
	assert.NotContains(t, string(r.body), "<b>sam", "payload values are escaped")
	assert.Equal(t, 405, h.adminCall(t, "POST", "/admin/v1"+DemoReceiverPath, body).status, "deliveries go to "+DemoReceiverPath)
	r = h.adminCall(t, "GET", "/admin/v1"+DemoReceiverPath+"?format=json", "")
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	require.True(t, sc.Scan())
	assert.Len(t, r.json(t)["messages"], 1)

	// The demo definitions aim their webhook at this receiver.
	h = triggerHarness(t, func(c *Config) { c.AdminAddr = "127.0.0.1:9999" })
	r = h.adminCall(t, "GET", "/admin/v1/webhooks/mailer", "")
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, "http://127.0.0.1:9999/demo/webhooks", r.json(t)["url"])
	assert.Equal(t, []any{"cart-abandoners", "sint-gift-buyers"}, r.json(t)["segments"])
	// Without a key the demo runs without its webhook.
	h = newHarness(t, nil)
	assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/webhooks/mailer", "").status)
}

// slowGets is a store whose reads take d each: an export that takes longer
// than the admin listener's write timeout without ever stalling.
type slowGets struct {
	profile.Store
	d time.Duration
}

func (s slowGets) Get(ctx context.Context, pid string, seasons []string) ([]profile.Record, error) {
	time.Sleep(s.d)
	return s.Store.Get(ctx, pid, seasons)
}

// TestExportOutlastsTheWriteTimeout: an export that takes several times
// the admin listener's write timeout, over a real TCP connection (where a
// deadline holds for every write), streams every contact: the timeout
// bounds a stretch without progress, not the whole stream. (It cut the
// stream when it bounded the whole answer: a 100,000-contact export on a
// busy machine stopped after a minute.)
func TestExportOutlastsTheWriteTimeout(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	const contacts, timeout = 60, 500 * time.Millisecond
	fast := newHarnessWithStore(t, sharedStore{st}, nil)
	require.Equal(t, 200, fast.adminCall(t, "PUT", "/admin/v1/definitions", "segments:\n  - {id: carts, rule: {field: cart.items, gte: 1}}\n").status)
	for i := range contacts {
		contactCart(t, fast, "c"+strconv.Itoa(i)+"@example.nl", "")
	}

	// A node on the same store whose reads take 25 ms: 60 of them take 1.5 s, three times the timeout.
	srv, err := New(context.Background(), slowGets{sharedStore{st}, 25 * time.Millisecond}, Config{
		Secrets: [][]byte{[]byte("test-secret-0123456789")}, AdminToken: testAdminToken, APIKey: testAPIKey,
		Now: func() time.Time { return testNow }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreDeadline: 5 * time.Second, adminWriteTimeout: timeout,
	})
	require.NoError(t, err)
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(fasthttputil.NewInmemoryListener(), adm) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		<-done
	})
	req, err := http.NewRequest("GET", "http://"+adm.Addr().String()+"/admin/v1/segments/carts/members?format=ndjson", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	require.NoError(t, err, "the stream was cut after %v", took)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	assert.Len(t, lines, contacts, "every contact, in %v", took)
	assert.NotContains(t, string(body), `"error"`)
	assert.Greater(t, took, timeout, "the export took longer than the write timeout")
}
