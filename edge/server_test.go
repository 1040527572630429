package edge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

const (
	testAdminToken = "admin-token-for-tests"
	testAPIKey     = "api-key-for-tests"
	testIdentity   = "identity-key-for-tests-0123456789"
	browserUA      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

// testNow is inside the Sinterklaas collect and active windows of the demo.
var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// harness is a Server on in-memory listeners with clients for both.
type harness struct {
	srv           *Server
	store         profile.Store
	public, admin *fasthttp.Client
	publicLn      *fasthttputil.InmemoryListener // for raw requests
}

// newHarness starts a Server over a fresh embedded store; mutate adjusts the
// configuration first.
func newHarness(tb testing.TB, mutate func(*Config)) *harness {
	tb.Helper()
	st, err := embeddedstore.Open(tb.TempDir())
	require.NoError(tb, err)
	return newHarnessWithStore(tb, st, mutate)
}

func newHarnessWithStore(tb testing.TB, st profile.Store, mutate func(*Config)) *harness {
	tb.Helper()
	cfg := Config{
		Secrets:      [][]byte{[]byte("test-secret-0123456789")},
		AdminToken:   testAdminToken,
		APIKey:       testAPIKey,
		IdentityKeys: [][]byte{[]byte(testIdentity)},
		CookieSecure: true,
		Demo:         true,
		Now:          func() time.Time { return testNow },
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Deadlines for tests whose subject is not deadlines: the race
		// build beside other packages on a busy machine can take longer
		// than production's 50/250 ms and answer degraded (tests of the
		// deadlines set their own).
		StoreDeadline: 5 * time.Second,
		WriteDeadline: 5 * time.Second,
		EventDeadline: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(context.Background(), st, cfg)
	require.NoError(tb, err)
	pub, adm := fasthttputil.NewInmemoryListener(), fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pub, adm) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, srv.Shutdown(ctx))
		<-done
		st.Close()
	})
	dial := func(ln *fasthttputil.InmemoryListener) *fasthttp.Client {
		return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	}
	return &harness{srv: srv, store: st, public: dial(pub), admin: dial(adm), publicLn: pub}
}

// response is a finished request, copied out of fasthttp's buffers.
type response struct {
	status  int
	body    []byte
	headers map[string]string
	cookie  *fasthttp.Cookie
}

func (r *response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// call is one request; hdr holds extra headers ("Cookie", "User-Agent", …).
func call(tb testing.TB, c *fasthttp.Client, method, uri, body string, hdr map[string]string) *response {
	tb.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://etalage.test" + uri)
	req.Header.SetMethod(method)
	if _, ok := hdr["User-Agent"]; !ok {
		req.Header.SetUserAgent(browserUA)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
	}
	require.NoError(tb, c.DoTimeout(req, resp, 10*time.Second))
	out := &response{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...), headers: map[string]string{}}
	for k, v := range resp.Header.All() {
		out.headers[string(k)] = string(v)
	}
	for _, v := range resp.Header.Cookies() { // key, whole Set-Cookie value
		c := fasthttp.AcquireCookie()
		require.NoError(tb, c.ParseBytes(v))
		if string(c.Key()) == "etl" {
			out.cookie = c
		}
	}
	return out
}

func (h *harness) decide(tb testing.TB, cookie, body string) *response {
	tb.Helper()
	hdr := map[string]string{}
	if cookie != "" {
		hdr["Cookie"] = "etl=" + cookie
	}
	return call(tb, h.public, "POST", "/v1/decide", body, hdr)
}

func (h *harness) adminCall(tb testing.TB, method, uri, body string) *response {
	tb.Helper()
	return call(tb, h.admin, method, uri, body, map[string]string{"Authorization": "Bearer " + testAdminToken})
}

// token returns an identity token for sub signed with the test key, valid
// for an hour of the service's (frozen) clock.
func token(tb testing.TB, sub string) string {
	tb.Helper()
	tok, err := SignIdentity([]byte(testIdentity), sub, testNow.Add(time.Hour))
	require.NoError(tb, err)
	return tok
}

func errorCode(tb testing.TB, r *response) string {
	tb.Helper()
	e, ok := r.json(tb)["error"].(map[string]any)
	require.True(tb, ok, "an error body: %s", r.body)
	require.NotEmpty(tb, e["message"])
	return e["code"].(string)
}

func blockID(tb testing.TB, r *response, slot string) string {
	tb.Helper()
	blocks := r.json(tb)["blocks"].(map[string]any)
	b, _ := blocks[slot].(map[string]any)
	if b == nil {
		return ""
	}
	return b["id"].(string)
}

func pageViews(urls ...string) string {
	var b strings.Builder
	for i, u := range urls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"type":"page_view","url":"` + u + `"}`)
	}
	return b.String()
}
