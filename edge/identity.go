package edge

import (
	"bytes"
	"crypto/subtle"

	"github.com/valyala/fasthttp"
)

// visitorOf returns the profile id of the caller: from the cookie, else from
// a forwarded visitor value (a shop backend calling server-side). A value
// with a bad signature counts as absent: a new visitor, never an error.
func (s *Server) visitorOf(ctx *fasthttp.RequestCtx, forwarded []byte) (pid string, ok bool) {
	if len(forwarded) > 0 {
		// A shop backend forwards its visitor's cookie value; a value that
		// does not verify is not replaced by the caller's own cookie.
		return s.signer.Verify(forwarded)
	}
	if c := ctx.Request.Header.Cookie(s.cfg.CookieName); len(c) > 0 {
		if pid, ok = s.signer.Verify(c); ok {
			return pid, true
		}
	}
	return "", false
}

// setVisitorCookie sets (or renews) the visitor cookie for pid and returns
// the visitor value.
func (s *Server) setVisitorCookie(ctx *fasthttp.RequestCtx, pid string) string {
	v := s.signer.Sign(pid)
	c := fasthttp.AcquireCookie()
	c.SetKey(s.cfg.CookieName)
	c.SetValue(v)
	c.SetPath("/")
	c.SetMaxAge(cookieMaxAge)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	c.SetSecure(s.cfg.CookieSecure)
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
	return v
}

// isPrefetch reports a speculative load (link prefetch, prerender preview):
// it gets a decision but writes nothing and gets no cookie.
func isPrefetch(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	for _, name := range [...]string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"} {
		v := h.Peek(name)
		if len(v) > 0 && (bytes.Contains(bytes.ToLower(v), []byte("prefetch")) || bytes.Contains(bytes.ToLower(v), []byte("preview"))) {
			return true
		}
	}
	return false
}

// hasAPIKey reports whether the request carries the configured API key, as
// `Authorization: Bearer <key>` or `X-Api-Key: <key>`, compared in constant time.
func (s *Server) hasAPIKey(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.APIKey == "" {
		return false
	}
	k := ctx.Request.Header.Peek("X-Api-Key")
	if len(k) == 0 {
		k = bearer(ctx)
	}
	return len(k) > 0 && subtle.ConstantTimeCompare(k, []byte(s.cfg.APIKey)) == 1
}

func bearer(ctx *fasthttp.RequestCtx) []byte {
	a := ctx.Request.Header.Peek("Authorization")
	if len(a) > 7 && bytes.EqualFold(a[:7], []byte("Bearer ")) {
		return bytes.TrimSpace(a[7:])
	}
	return nil
}

// authorizeAdmin checks the admin bearer token in constant time. Without a
// configured token (dev mode on a loopback listener) everything is allowed.
func (s *Server) authorizeAdmin(ctx *fasthttp.RequestCtx) error {
	if s.cfg.AdminToken == "" {
		return nil
	}
	t := bearer(ctx)
	if len(t) == 0 {
		return errorf(ECodeUnauthorized, "missing bearer token")
	}
	if subtle.ConstantTimeCompare(t, []byte(s.cfg.AdminToken)) != 1 {
		return errorf(ECodeForbidden, "wrong bearer token")
	}
	return nil
}
