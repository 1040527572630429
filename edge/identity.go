package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"

	"github.com/etalage/etalage/profile"
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

// cookieAttrs follow the visitor value in every Set-Cookie.
var cookieAttrs = "; max-age=" + strconv.Itoa(cookieMaxAge) + "; path=/; HttpOnly; SameSite=Lax"

// setVisitorCookie sets (or renews) the visitor cookie for pid and returns
// the visitor value.
func (s *Server) setVisitorCookie(ctx *fasthttp.RequestCtx, pid string) string {
	v := s.signer.Sign(pid)
	// Written out by hand rather than through fasthttp.Cookie: the same
	// attributes, without its allocation and formatting on every decide.
	var buf [256]byte
	b := append(buf[:0], s.cfg.CookieName...)
	b = append(b, '=')
	b = append(b, v...)
	b = append(b, cookieAttrs...)
	if s.cfg.CookieSecure {
		b = append(b, "; secure"...)
	}
	ctx.Response.Header.SetBytesV(fasthttp.HeaderSetCookie, b)
	return v
}

// erasedKey names the tombstone of an erased visitor id: it holds nothing
// of the person (the id is random) and lives as long as a cookie could, so
// that the erased browser's next request starts a new visitor instead of
// bringing the id back.
//
// The key holds a hash of the id and no value: after an erasure no key
// holds or points at the person, yet the erased cookie is recognised.
func erasedKey(pid string) string {
	sum := sha256.Sum256([]byte(pid))
	return "erased:" + hex.EncodeToString(sum[:])
}

// wasErased reports whether pid's profile was erased. It is asked only for
// profiles that hold nothing, so it costs nothing on the usual path.
func (s *Server) wasErased(pid string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreDeadline)
	defer cancel()
	_, err := s.store.Lookup(ctx, erasedKey(pid))
	return err == nil
}

// clearVisitorCookie removes the visitor cookie from the browser.
func (s *Server) clearVisitorCookie(ctx *fasthttp.RequestCtx) {
	b := append([]byte(s.cfg.CookieName), "=; max-age=0; path=/; HttpOnly; SameSite=Lax"...)
	if s.cfg.CookieSecure {
		b = append(b, "; secure"...)
	}
	ctx.Response.Header.SetBytesV(fasthttp.HeaderSetCookie, b)
}

// mayProfile reports whether a request without a known visitor may create
// one: always, unless --consent required, then only when its events grant
// profiling consent.
func (s *Server) mayProfile(events []profile.Event) bool {
	if !s.cfg.ConsentNeeded {
		return true
	}
	for i := range events {
		if events[i].Type == profile.ConsentEvent && events[i].Purposes["profiling"] {
			return true
		}
	}
	return false
}

// isPrefetch reports a speculative load (link prefetch, prerender preview):
// it gets a decision but writes nothing and gets no cookie.
func isPrefetch(ctx *fasthttp.RequestCtx) bool {
	// One pass over the headers rather than a lookup of each name: this
	// runs on every decide.
	for k, v := range ctx.Request.Header.All() {
		for _, name := range prefetchHeaders {
			if bytes.EqualFold(k, []byte(name)) && (containsFold(v, "prefetch") || containsFold(v, "preview")) {
				return true
			}
		}
	}
	return false
}

// prefetchHeaders name a speculative load: Sec-Purpose (Chrome), Purpose
// (older Chrome, Safari), X-Purpose, X-Moz (Firefox).
var prefetchHeaders = [...]string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"}

// containsFold reports whether b contains the lower-case ASCII word w,
// ignoring ASCII case.
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		if bytes.EqualFold(b[i:i+len(w)], []byte(w)) {
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
