package console

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type result struct {
	status int
	body   string
	cookie *fasthttp.Cookie
	header map[string]string
}

// serve runs the console in front of a stand-in admin API that echoes the
// Authorization header it got.
func serve(t *testing.T, cfg Config) func(method, uri, body string, hdr map[string]string) result {
	t.Helper()
	c := New(cfg)
	next := func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(200)
		ctx.SetBodyString("api auth=" + string(ctx.Request.Header.Peek("Authorization")) + " cookie=" + string(ctx.Request.Header.Cookie(CookieName)))
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: c.Wrap(next)}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return func(method, uri, body string, hdr map[string]string) result {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://admin.test" + uri)
		req.Header.SetMethod(method)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		req.SetBodyString(body)
		require.NoError(t, client.Do(req, resp))
		r := result{status: resp.StatusCode(), body: string(resp.Body()), header: map[string]string{}}
		for k, v := range resp.Header.All() {
			r.header[string(k)] = string(v)
		}
		for _, v := range resp.Header.Cookies() {
			ck := fasthttp.AcquireCookie()
			require.NoError(t, ck.ParseBytes(v))
			r.cookie = ck
		}
		return r
	}
}

func signIn(t *testing.T, do func(string, string, string, map[string]string) result) (cookie, csrf string) {
	t.Helper()
	r := do("POST", "/admin/session", `{"token":"the-admin-token"}`, nil)
	require.Equal(t, 200, r.status, r.body)
	require.NotNil(t, r.cookie)
	csrf = r.body[strings.Index(r.body, `"csrf":"`)+8:]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	return string(r.cookie.Value()), csrf
}

func TestSignInSetsAStrictHttpOnlyCookie(t *testing.T) {
	do := serve(t, Config{SignInToken: "the-admin-token", APIToken: "the-admin-token"})
	r := do("POST", "/admin/session", `{"token":"wrong"}`, nil)
	assert.Equal(t, 403, r.status)
	assert.Nil(t, r.cookie, "no session for a wrong token")

	r = do("POST", "/admin/session", `{"token":"the-admin-token"}`, nil)
	require.Equal(t, 200, r.status, r.body)
	require.NotNil(t, r.cookie)
	assert.True(t, r.cookie.HTTPOnly(), "page scripts never see the session")
	assert.Equal(t, fasthttp.CookieSameSiteStrictMode, r.cookie.SameSite())
	assert.Equal(t, "/admin", string(r.cookie.Path()))
	assert.NotContains(t, r.body, "the-admin-token")
	assert.NotEqual(t, "the-admin-token", string(r.cookie.Value()), "the cookie is a signed session, not the token")
}

func TestSessionCallsNeedTheCSRFToken(t *testing.T) {
	do := serve(t, Config{SignInToken: "the-admin-token", APIToken: "the-admin-token"})
	cookie, csrf := signIn(t, do)
	withCookie := map[string]string{"Cookie": CookieName + "=" + cookie}

	r := do("PUT", "/admin/v1/definitions", "x", withCookie)
	assert.Equal(t, 403, r.status, "a write without the CSRF token is refused")
	r = do("GET", "/admin/v1/profiles/email:a@b.nl", "", withCookie)
	assert.Equal(t, 403, r.status, "reads need it too")

	ok := map[string]string{"Cookie": CookieName + "=" + cookie, "X-CSRF-Token": csrf}
	r = do("PUT", "/admin/v1/definitions", "x", ok)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "api auth=Bearer the-admin-token cookie=", r.body, "the API sees the admin's bearer token and no session cookie")

	cross := map[string]string{"Cookie": CookieName + "=" + cookie, "X-CSRF-Token": csrf, "Origin": "https://evil.example"}
	r = do("PUT", "/admin/v1/definitions", "x", cross)
	assert.Equal(t, 403, r.status, "another site's request is refused")

	r = do("GET", "/admin/v1/preview/demo/", "", withCookie)
	assert.Equal(t, 200, r.status, "the preview frame loads without a header")

	r = do("GET", "/admin/v1/definitions", "", map[string]string{"Cookie": CookieName + "=forged", "X-CSRF-Token": csrf})
	assert.Equal(t, 401, r.status, "an unknown session is signed out")
	r = do("GET", "/admin/v1/definitions", "", map[string]string{"Authorization": "Bearer mine"})
	assert.Equal(t, "api auth=Bearer mine cookie=", r.body, "bearer callers pass untouched")
}

func TestIdleSignOut(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	do := serve(t, Config{SignInToken: "the-admin-token", APIToken: "the-admin-token", Idle: 10 * time.Minute, Now: clk.now})
	cookie, csrf := signIn(t, do)
	hdr := map[string]string{"Cookie": CookieName + "=" + cookie, "X-CSRF-Token": csrf}
	// use sends a request with the cookie the browser holds, and keeps
	// the one the answer re-issues, as a browser does.
	use := func(uri string) result {
		r := do("GET", uri, "", hdr)
		if r.cookie != nil {
			hdr["Cookie"] = CookieName + "=" + string(r.cookie.Value())
		}
		return r
	}
	clk.add(9 * time.Minute)
	assert.Equal(t, 200, use("/admin/v1/definitions").status)
	clk.add(9 * time.Minute)
	assert.Equal(t, 200, use("/admin/session").status, "use keeps a session alive")
	clk.add(11 * time.Minute)
	r := use("/admin/v1/definitions")
	assert.Equal(t, 401, r.status, "idle past the limit signs out")
	assert.Equal(t, 401, use("/admin/session").status)
}

// TestSessionOnAnotherNode: behind a load balancer the next request may
// reach another node, or the same one restarted; a console with the same
// admin token accepts the session, with the same CSRF token, and still
// asks for it.
func TestSessionOnAnotherNode(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	cfg := Config{SignInToken: "the-admin-token", APIToken: "the-admin-token", Idle: 10 * time.Minute, Now: clk.now}
	a, b := serve(t, cfg), serve(t, cfg)
	cookie, csrf := signIn(t, a)
	clk.add(5 * time.Minute)
	r := b("GET", "/admin/session", "", map[string]string{"Cookie": CookieName + "=" + cookie})
	require.Equal(t, 200, r.status, "node b knows node a's session: %s", r.body)
	assert.Contains(t, r.body, `"csrf":"`+csrf+`"`, "the CSRF token is the same on every node")
	require.NotNil(t, r.cookie, "the session is re-issued with the new activity time")
	cookie = string(r.cookie.Value())

	r = b("PUT", "/admin/v1/definitions", "x", map[string]string{"Cookie": CookieName + "=" + cookie})
	assert.Equal(t, 403, r.status, "another node still wants the CSRF token")
	r = b("PUT", "/admin/v1/definitions", "x", map[string]string{"Cookie": CookieName + "=" + cookie, "X-CSRF-Token": csrf})
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "api auth=Bearer the-admin-token cookie=", r.body)

	// The re-issued cookie slid the idle time: 9 minutes later it is
	// alive on node a (14 minutes after sign-in, idle 10).
	clk.add(9 * time.Minute)
	assert.Equal(t, 200, a("GET", "/admin/session", "", map[string]string{"Cookie": CookieName + "=" + cookie}).status)

	other := serve(t, Config{SignInToken: "another-token", Now: clk.now})
	assert.Equal(t, 401, other("GET", "/admin/session", "", map[string]string{"Cookie": CookieName + "=" + cookie}).status,
		"a node with another admin token refuses it: changing the token signs everyone out")
}

// TestSessionCookieRefused: a cookie that was not issued as it stands is
// no session: forged, tampered with (its times or its signature), signed
// with another key, past its idle time or its maximum age.
func TestSessionCookieRefused(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	cfg := Config{SignInToken: "the-admin-token", Idle: 10 * time.Minute, MaxAge: time.Hour, Now: clk.now}
	c := New(cfg)
	good := session{issued: t0, last: t0, nonce: newNonce()}
	valid := c.encode(good)
	parts := strings.Split(valid, ".")
	at := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	for _, tc := range []struct {
		name, cookie string
		after        time.Duration
	}{
		{"forged", "v1.1.1.abc.def", 0},
		{"not a token at all", "0123456789abcdef", 0},
		{"last activity moved on", strings.Join([]string{parts[0], parts[1], at(50 * time.Minute), parts[3], parts[4]}, "."), 50 * time.Minute},
		{"issue time moved on", strings.Join([]string{parts[0], at(65 * time.Minute), at(65 * time.Minute), parts[3], parts[4]}, "."), 70 * time.Minute},
		{"signature changed", valid[:len(valid)-2] + "AA", 0},
		{"signature dropped", strings.Join(parts[:4], "."), 0},
		{"another version", strings.Join(append([]string{"v2"}, parts[1:]...), "."), 0},
		{"signed with another key", New(Config{SignInToken: "other"}).encode(good), 0},
		{"idle too long", valid, 11 * time.Minute},
		{"too old, however active", c.encode(session{issued: t0, last: t0.Add(61 * time.Minute), nonce: good.nonce}), 61 * time.Minute},
		{"last activity in the future", c.encode(session{issued: t0, last: t0.Add(time.Hour), nonce: good.nonce}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.set(t0.Add(tc.after))
			do := serve(t, cfg)
			hdr := map[string]string{"Cookie": CookieName + "=" + tc.cookie, "X-CSRF-Token": c.csrf(good)}
			r := do("GET", "/admin/v1/definitions", "", hdr)
			assert.Equal(t, 401, r.status, r.body)
			assert.NotContains(t, r.body, "api auth", "the API is never reached")
			assert.Equal(t, 401, do("GET", "/admin/session", "", hdr).status)
		})
	}
	clk.set(t0.Add(9 * time.Minute))
	ok := serve(t, cfg)("GET", "/admin/session", "", map[string]string{"Cookie": CookieName + "=" + valid})
	assert.Equal(t, 200, ok.status, "the untouched cookie is a session: the rows above fail for their reason")
}

func TestSignOut(t *testing.T) {
	do := serve(t, Config{SignInToken: "the-admin-token"})
	cookie, csrf := signIn(t, do)
	hdr := map[string]string{"Cookie": CookieName + "=" + cookie}
	assert.Equal(t, 403, do("DELETE", "/admin/session", "", hdr).status, "signing out needs the CSRF token")
	hdr["X-CSRF-Token"] = csrf
	r := do("DELETE", "/admin/session", "", hdr)
	require.Equal(t, 200, r.status)
	assert.Equal(t, 401, do("GET", "/admin/session", "", hdr).status)
}

func TestGuessingIsBraked(t *testing.T) {
	do := serve(t, Config{SignInToken: "the-admin-token"})
	for range 10 {
		assert.Equal(t, 403, do("POST", "/admin/session", `{"token":"guess"}`, nil).status)
	}
	assert.Equal(t, 429, do("POST", "/admin/session", `{"token":"the-admin-token"}`, nil).status)
}

func TestPageAndAssets(t *testing.T) {
	do := serve(t, Config{SignInToken: "t"})
	r := do("GET", "/admin/", "", nil)
	require.Equal(t, 200, r.status)
	assert.Contains(t, r.body, "etalage console")
	assert.Contains(t, r.header["Content-Security-Policy"], "script-src 'self'")
	assert.Contains(t, r.header["Content-Security-Policy"], "frame-ancestors 'none'")
	assert.Equal(t, 200, do("GET", "/admin/assets/console.js", "", nil).status)
	assert.NotContains(t, do("GET", "/admin/assets/../console.go", "", nil).body, "package console", "no way out of the assets")
	assert.Equal(t, 404, do("GET", "/admin/assets/nope.js", "", nil).status)
	assert.Equal(t, 302, do("GET", "/admin", "", nil).status)
}
