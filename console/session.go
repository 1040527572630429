package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// A session is the cookie itself, so that any node that knows the admin
// token accepts it, before and after a restart:
//
//	v1.<issued>.<last>.<nonce>.<mac>
//
// issued and last are Unix seconds (sign-in and the last request), nonce
// is 16 random bytes in hex, and mac is HMAC-SHA256 over everything
// before it, keyed from the admin token. Each request through a session
// re-issues the cookie with a new last (the idle time slides); the CSRF
// token is an HMAC of the nonce, so it stays the same for the session's
// life on every node. Changing the admin token signs every session out.
//
// Sign-out clears the cookie in the browser and records the nonce on the
// node that served it until the session would have expired. Without a
// shared store that is all a stateless session can do: a copy of the
// cookie taken before sign-out is accepted by another node until its idle
// time runs out (30 minutes by default; the cookie is HttpOnly,
// SameSite=Strict and scoped to /admin, so a copy needs the browser).
type session struct {
	issued, last time.Time
	nonce        string
}

const sessionVersion = "v1"

// sessionKey derives the signing key from the sign-in token, so that no
// new secret has to be configured and shared between nodes.
func sessionKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("etalage console session " + sessionVersion))
	return m.Sum(nil)
}

func (c *Console) mac(msg string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// encode signs s as a cookie value.
func (c *Console) encode(s session) string {
	body := sessionVersion + "." + strconv.FormatInt(s.issued.Unix(), 10) + "." + strconv.FormatInt(s.last.Unix(), 10) + "." + s.nonce
	return body + "." + c.mac(body)
}

// decode checks a cookie value's signature and reads it; it does not look
// at the times.
func (c *Console) decode(v string) (session, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || len(v) > 200 {
		return session{}, false
	}
	body, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(c.mac(body))) {
		return session{}, false
	}
	parts := strings.Split(body, ".")
	if len(parts) != 4 || parts[0] != sessionVersion {
		return session{}, false
	}
	issued, err1 := strconv.ParseInt(parts[1], 10, 64)
	last, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || last < issued {
		return session{}, false
	}
	return session{issued: time.Unix(issued, 0), last: time.Unix(last, 0), nonce: parts[3]}, true
}

// csrf is the session's CSRF token: the same on every node.
func (c *Console) csrf(s session) string { return c.mac("csrf." + s.nonce) }

func newNonce() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// lookup returns the live session of the request's cookie, or false when
// there is none, it is forged, idle too long, too old, or signed out here.
func (c *Console) lookup(ctx *fasthttp.RequestCtx) (session, bool) {
	v := ctx.Request.Header.Cookie(CookieName)
	if len(v) == 0 || c.cfg.SignInToken == "" {
		return session{}, false
	}
	s, ok := c.decode(string(v))
	if !ok {
		return session{}, false
	}
	now := c.cfg.Now()
	if now.Sub(s.last) > c.cfg.Idle || now.Sub(s.issued) > c.cfg.MaxAge || s.last.After(now.Add(time.Minute)) {
		return session{}, false
	}
	c.mu.Lock()
	_, out := c.signedOut[s.nonce]
	c.mu.Unlock()
	return s, !out
}

// touch re-issues the session's cookie with now as its last activity: the
// idle time slides with use.
func (c *Console) touch(ctx *fasthttp.RequestCtx, s session) {
	now := c.cfg.Now()
	s.last = now
	c.setCookie(ctx, c.encode(s), int((c.cfg.MaxAge - now.Sub(s.issued)).Seconds()))
}

// signOut remembers s as signed out on this node until it would have
// expired anyway, and forgets those past that.
func (c *Console) signOut(s session) {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, until := range c.signedOut {
		if now.After(until) {
			delete(c.signedOut, n)
		}
	}
	c.signedOut[s.nonce] = s.issued.Add(c.cfg.MaxAge)
}
