package console

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

//go:embed assets
var assetFiles embed.FS

var assets = mustSub(assetFiles, "assets")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// CookieName is the console's session cookie; its path is /admin.
const CookieName = "etalage_console"

// Config configures a Console.
type Config struct {
	// SignInToken is what a marketer types to sign in: the admin token,
	// or in development mode (no admin token) one generated for the run.
	SignInToken string
	// APIToken is the bearer token the console's API calls are sent with
	// on behalf of a signed-in session ("" when the API needs none).
	APIToken string
	// Idle signs a session out after this long without a request
	// (default 30 minutes); MaxAge bounds a session whatever its use
	// (default 12 hours).
	Idle, MaxAge time.Duration
	// Secure sets the Secure flag on the session cookie: on when the admin
	// listener is reached over HTTPS.
	Secure bool
	Now    func() time.Time
}

// Console serves /admin/ and lets signed-in sessions call /admin/v1/.
// Sessions live in the cookie itself (see session.go), so that every node
// behind a load balancer, and a restarted one, accepts them.
type Console struct {
	cfg Config
	key []byte // signs session cookies; derived from SignInToken
	mu  sync.Mutex
	// signedOut holds the nonces of sessions signed out on this node until
	// they would have expired anyway; failures the recent wrong tokens.
	signedOut map[string]time.Time
	failures  []time.Time
}

// New returns a Console.
func New(cfg Config) *Console {
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Minute
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Console{cfg: cfg, key: sessionKey(cfg.SignInToken), signedOut: map[string]time.Time{}}
}

// Wrap returns the admin handler with the console in front: /admin/ (the
// page and its assets), /admin/session (sign in and out), and /admin/v1/
// calls that carry a session cookie instead of a bearer token. Everything
// else goes to next unchanged.
func (c *Console) Wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p := string(ctx.Path())
		switch {
		case p == "/admin":
			ctx.Redirect("/admin/", fasthttp.StatusFound)
		case p == "/admin/session":
			c.serveSession(ctx)
		case strings.HasPrefix(p, "/admin/v1/") || p == "/metrics" || strings.HasPrefix(p, "/debug/"):
			if len(ctx.Request.Header.Peek("Authorization")) == 0 && len(ctx.Request.Header.Cookie(CookieName)) > 0 {
				s, ok := c.authorize(ctx)
				if !ok {
					return
				}
				next(ctx)
				// After the API's answer, which may have reset the
				// response: the idle time slides on errors too.
				c.touch(ctx, s)
				return
			}
			next(ctx)
		case p == "/admin/" || strings.HasPrefix(p, "/admin/assets/"):
			c.serveAsset(ctx, p)
		default:
			next(ctx)
		}
	}
}

// securityHeaders keep the console's pages to themselves: no framing by
// other sites, no scripts but its own.
func securityHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) serveAsset(ctx *fasthttp.RequestCtx, p string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	name := "index.html"
	if p != "/admin/" {
		name = path.Clean(strings.TrimPrefix(p, "/admin/assets/"))
	}
	b, err := fs.ReadFile(assets, name)
	if err != nil || strings.HasPrefix(name, "..") {
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such console file")
		return
	}
	securityHeaders(ctx)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	ctx.SetBody(b)
}

// serveSession answers /admin/session: POST signs in with {"token"}, GET
// says whether the cookie's session is alive (and hands the page its CSRF
// token), DELETE signs out.
func (c *Console) serveSession(ctx *fasthttp.RequestCtx) {
	securityHeaders(ctx)
	switch {
	case ctx.IsPost():
		if !sameOrigin(ctx) {
			writeError(ctx, fasthttp.StatusForbidden, "forbidden", "sign in from the console's own page")
			return
		}
		var req struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
			req.Token = string(ctx.PostArgs().Peek("token"))
		}
		if !c.allowAttempt() {
			ctx.Response.Header.Set("Retry-After", "60")
			writeError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many wrong tokens; wait a minute")
			return
		}
		if c.cfg.SignInToken == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(req.Token)), []byte(c.cfg.SignInToken)) != 1 {
			c.failed()
			writeError(ctx, fasthttp.StatusForbidden, "forbidden", "that is not the admin token")
			return
		}
		now := c.cfg.Now()
		s := session{issued: now, last: now, nonce: newNonce()}
		c.setCookie(ctx, c.encode(s), int(c.cfg.MaxAge.Seconds()))
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"csrf": c.csrf(s), "idle_seconds": int(c.cfg.Idle.Seconds())})
	case ctx.IsGet():
		s, ok := c.lookup(ctx)
		if !ok {
			writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "not signed in")
			return
		}
		c.touch(ctx, s)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"csrf": c.csrf(s), "idle_seconds": int(c.cfg.Idle.Seconds())})
	case ctx.IsDelete():
		s, ok := c.lookup(ctx)
		if ok && !c.csrfOK(ctx, s) {
			writeError(ctx, fasthttp.StatusForbidden, "forbidden", "missing or wrong X-CSRF-Token")
			return
		}
		if ok {
			c.signOut(s)
		}
		c.setCookie(ctx, "", -1)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"signed_out": true})
	default:
		ctx.Response.Header.Set("Allow", "GET, POST, DELETE")
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET, POST or DELETE")
	}
}

// authorize lets a request with a live session through as the admin: it
// needs the session's CSRF token in X-CSRF-Token unless it only reads
// (GET, HEAD), and reads also need it unless they are the preview pages
// that the console shows in a frame. It writes the refusal itself.
func (c *Console) authorize(ctx *fasthttp.RequestCtx) (session, bool) {
	s, ok := c.lookup(ctx)
	if !ok {
		c.setCookie(ctx, "", -1)
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "signed out: sign in again")
		return s, false
	}
	reading := ctx.IsGet() || ctx.IsHead()
	preview := reading && strings.HasPrefix(string(ctx.Path()), "/admin/v1/preview/")
	if !preview && !c.csrfOK(ctx, s) {
		writeError(ctx, fasthttp.StatusForbidden, "forbidden", "missing or wrong X-CSRF-Token")
		return s, false
	}
	if !reading && !sameOrigin(ctx) {
		writeError(ctx, fasthttp.StatusForbidden, "forbidden", "cross-origin request refused")
		return s, false
	}
	if c.cfg.APIToken != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+c.cfg.APIToken)
	}
	ctx.Request.Header.DelCookie(CookieName)
	return s, true
}

func (c *Console) csrfOK(ctx *fasthttp.RequestCtx, s session) bool {
	got := ctx.Request.Header.Peek("X-CSRF-Token")
	return len(got) > 0 && subtle.ConstantTimeCompare(got, []byte(c.csrf(s))) == 1
}

// sameOrigin: a browser sends Origin on every POST, PUT and DELETE; when
// it names another host than the one asked, the request comes from
// another site.
func sameOrigin(ctx *fasthttp.RequestCtx) bool {
	o := string(ctx.Request.Header.Peek("Origin"))
	if o == "" {
		return true
	}
	_, host, ok := strings.Cut(o, "://")
	return ok && host == string(ctx.Host())
}

// allowAttempt brakes guessing: ten wrong tokens within a minute block
// sign-in for the rest of that minute.
func (c *Console) allowAttempt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	kept := c.failures[:0]
	for _, t := range c.failures {
		if now.Sub(t) < time.Minute {
			kept = append(kept, t)
		}
	}
	c.failures = kept
	return len(c.failures) < 10
}

func (c *Console) failed() {
	c.mu.Lock()
	c.failures = append(c.failures, c.cfg.Now())
	c.mu.Unlock()
}

func (c *Console) setCookie(ctx *fasthttp.RequestCtx, value string, maxAge int) {
	ck := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(ck)
	ck.SetKey(CookieName)
	ck.SetValue(value)
	ck.SetPath("/admin")
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetSecure(c.cfg.Secure || ctx.IsTLS() || string(ctx.Request.Header.Peek("X-Forwarded-Proto")) == "https")
	if maxAge < 0 {
		ck.SetExpire(fasthttp.CookieExpireDelete)
	} else {
		ck.SetMaxAge(maxAge)
	}
	ctx.Response.Header.SetCookie(ck)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	writeJSON(ctx, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
