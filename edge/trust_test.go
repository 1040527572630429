package edge

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// victimDoc shows a victim's personal fields in a templated block, so that
// any leak of their profile into an attacker's decision is visible.
const victimDoc = `blocks:
  - {id: hello, slot: home-hero, html: "<p>Hi {{ .profile.first_name }} from {{ .profile.city }}</p>"}
`

// victim stores a known contact (e-mail victim@example.nl, customer 1001)
// with personal fields through the shop backend (API key), and returns
// their cookie value.
func victim(t *testing.T, h *harness) string {
	t.Helper()
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", victimDoc)
	require.Equal(t, 200, r.status, string(r.body))
	d := call(t, h.public, "POST", "/v1/decide",
		`{"slots":["home-hero"],"events":[{"type":"identify","email":"victim@example.nl","customer_id":1001,"fields":{"first_name":"Vera","city":"Zwolle","phone":"0612345678"}}]}`,
		map[string]string{"X-Api-Key": testAPIKey})
	require.Equal(t, 200, d.status, string(d.body))
	require.Contains(t, string(d.body), "Vera")
	return d.json(t)["visitor"].(string)
}

// assertVictimIntact checks that the victim's profile still holds only
// what the victim gave and is still the one their identifiers name.
func assertVictimIntact(t *testing.T, h *harness, victimCookie string) {
	t.Helper()
	for _, ref := range []string{"email:victim@example.nl", "customer:1001"} {
		r := h.adminCall(t, "GET", "/admin/v1/profiles/"+ref, "")
		require.Equal(t, 200, r.status, string(r.body))
		assert.Equal(t, victimCookie[:idLen], r.json(t)["id"], "%s still names the victim's profile", ref)
		assert.Contains(t, string(r.body), "Vera")
		assert.NotContains(t, string(r.body), "Mallory", "the attacker changed nothing")
		assert.NotContains(t, string(r.body), "/attacker", "no attacker behaviour merged in")
	}
}

// TestIdentifyUnprovenTakesNothing replays the takeover: a browser that
// only types a victim's e-mail address or guesses their customer id stays
// on its own profile, sees nothing of the victim and changes nothing.
func TestIdentifyUnprovenTakesNothing(t *testing.T) {
	for name, ident := range map[string]string{
		"victim's e-mail":       `"email":"Victim@Example.nl"`,
		"guessed customer id":   `"customer_id":1001`,
		"both":                  `"email":"victim@example.nl","customer_id":"1001"`,
		"token for nobody else": `"email":"victim@example.nl","token":"` + token(t, "email:mallory@example.nl") + `"`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			vc := victim(t, h)
			a := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/attacker")+`]}`)
			own := string(a.cookie.Value())
			r := h.decide(t, own, `{"slots":["home-hero"],"events":[{"type":"identify",`+ident+`,"fields":{"first_name":"Mallory"}}]}`)
			require.Equal(t, 200, r.status, string(r.body))
			require.NotNil(t, r.cookie)
			assert.Equal(t, own, string(r.cookie.Value()), "the cookie stays on the caller's own profile")
			assert.NotContains(t, string(r.body), "Vera")
			assert.NotContains(t, string(r.body), "Zwolle")
			assert.Contains(t, string(r.body), "Mallory", "the caller's own fields are kept")

			me := call(t, h.public, "GET", "/demo/api/me", "", map[string]string{"Cookie": "etl=" + own})
			require.Equal(t, 200, me.status)
			for _, secret := range []string{"Vera", "Zwolle", "0612345678", vc[:idLen]} {
				assert.NotContains(t, string(me.body), secret)
			}
			assertVictimIntact(t, h, vc)

			// Withdrawing consent on the attacker's cookie touches only the
			// attacker's profile.
			w := h.decide(t, own, `{"slots":["home-hero"],"events":[{"type":"consent","purposes":{"profiling":false}}]}`)
			require.Equal(t, 200, w.status)
			assertVictimIntact(t, h, vc)
		})
	}
}

// TestIdentifyTokens: which tokens prove an identify. A proven one moves
// the browser to the contact's profile; anything else is an unproven claim.
func TestIdentifyTokens(t *testing.T) {
	sign := func(key string, claims jwt.Claims, m jwt.SigningMethod) string {
		tok, err := jwt.NewWithClaims(m, claims).SignedString([]byte(key))
		require.NoError(t, err)
		return tok
	}
	claims := func(sub string, exp time.Time) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp)}
	}
	later := testNow.Add(time.Hour)
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"email:victim@example.nl","exp":`+itoa(later.Unix())+`}`)) + "."
	for _, tc := range []struct {
		name, ident, token string
		proven             bool
	}{
		{"valid e-mail token", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:victim@example.nl", later), jwt.SigningMethodHS256), true},
		{"sub normalised", `"email":"Victim@Example.NL"`, sign(testIdentity, claims("email: VICTIM@example.nl", later), jwt.SigningMethodHS256), true},
		{"valid customer token", `"customer_id":1001`, sign(testIdentity, claims("customer:1001", later), jwt.SigningMethodHS256), true},
		{"second (older) key verifies", `"email":"victim@example.nl"`, sign("older-identity-key-0123456789", claims("email:victim@example.nl", later), jwt.SigningMethodHS256), true},
		{"inside the leeway", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:victim@example.nl", testNow.Add(-10*time.Second)), jwt.SigningMethodHS256), true},
		// exp lies after the service's frozen clock (--now) but long
		// before the real one: the service clock decides.
		{"exp against the service clock", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:victim@example.nl", testNow.Add(time.Minute)), jwt.SigningMethodHS256), true},
		{"expired", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:victim@example.nl", testNow.Add(-time.Hour)), jwt.SigningMethodHS256), false},
		{"no exp", `"email":"victim@example.nl"`, sign(testIdentity, jwt.RegisteredClaims{Subject: "email:victim@example.nl"}, jwt.SigningMethodHS256), false},
		{"foreign subject", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:mallory@example.nl", later), jwt.SigningMethodHS256), false},
		{"customer token for another id", `"customer_id":1001`, sign(testIdentity, claims("customer:1002", later), jwt.SigningMethodHS256), false},
		{"e-mail token for a customer id", `"customer_id":1001`, sign(testIdentity, claims("email:victim@example.nl", later), jwt.SigningMethodHS256), false},
		{"sub without kind", `"email":"victim@example.nl"`, sign(testIdentity, claims("victim@example.nl", later), jwt.SigningMethodHS256), false},
		{"wrong key", `"email":"victim@example.nl"`, sign("not-the-identity-key-0123456789", claims("email:victim@example.nl", later), jwt.SigningMethodHS256), false},
		{"HS512", `"email":"victim@example.nl"`, sign(testIdentity, claims("email:victim@example.nl", later), jwt.SigningMethodHS512), false},
		{"alg none", `"email":"victim@example.nl"`, unsigned, false},
		{"garbage", `"email":"victim@example.nl"`, "not.a.jwt", false},
		{"the API key as a token", `"email":"victim@example.nl"`, testAPIKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.IdentityKeys = [][]byte{[]byte(testIdentity), []byte("older-identity-key-0123456789")}
			})
			vc := victim(t, h)
			a := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/attacker")+`]}`)
			own := string(a.cookie.Value())
			r := h.decide(t, own, `{"slots":["home-hero"],"events":[{"type":"identify",`+tc.ident+`,"token":"`+tc.token+`"}]}`)
			require.Equal(t, 200, r.status, string(r.body))
			require.NotNil(t, r.cookie)
			if tc.proven {
				assert.Equal(t, vc, string(r.cookie.Value()), "a proven identify moves the cookie to the contact")
				assert.Contains(t, string(r.body), "Vera")
				return
			}
			assert.Equal(t, own, string(r.cookie.Value()), "an unproven identify moves nothing")
			assert.NotContains(t, string(r.body), "Vera")
			assertVictimIntact(t, h, vc)
		})
	}
}

// TestIdentifyTokenWithoutKeys: with no --identity-key a browser cannot
// prove an identity, whatever token it sends.
func TestIdentifyTokenWithoutKeys(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IdentityKeys, c.Demo = nil, false })
	vc := victim(t, h)
	r := h.decide(t, "", `{"slots":["home-hero"],"events":[{"type":"identify","email":"victim@example.nl","token":"`+token(t, "email:victim@example.nl")+`"}]}`)
	require.Equal(t, 200, r.status, string(r.body))
	assert.NotEqual(t, vc, string(r.cookie.Value()))
	assert.NotContains(t, string(r.body), "Vera")
	assertVictimIntact(t, h, vc)
	m := call(t, h.admin, "GET", "/metrics", "", nil)
	assert.Contains(t, string(m.body), `etalage_identify_total{proof="no_key"} 1`)
}

// TestNoSessionFixation: a visitor value forwarded in a body or query is
// used for that request and never set as a cookie, so a link or a form
// cannot plant the attacker's profile in a victim's browser.
func TestNoSessionFixation(t *testing.T) {
	h := newHarness(t, nil)
	att := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
	planted := string(att.cookie.Value())
	for _, tc := range []struct{ name, method, uri, body string }{
		{"GET decide ?visitor=", "GET", "/v1/decide?slots=home-hero&visitor=" + planted, ""},
		{"POST decide body", "POST", "/v1/decide", `{"visitor":"` + planted + `","slots":["home-hero"],"events":[` + pageViews("/x") + `]}`},
		{"POST events body", "POST", "/v1/events", `{"visitor":"` + planted + `","events":[` + pageViews("/x") + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, h.public, tc.method, tc.uri, tc.body, nil)
			require.Less(t, r.status, 300, string(r.body))
			assert.Nil(t, r.cookie, "a forwarded visitor never becomes a cookie")
			assert.NotContains(t, r.headers, "Set-Cookie")
			assert.NotContains(t, string(r.body), planted)
			// With the victim's own cookie present, the forwarded one
			// still never replaces it.
			own := h.decide(t, "", `{"slots":["home-hero"]}`)
			r = call(t, h.public, tc.method, tc.uri, tc.body, map[string]string{"Cookie": "etl=" + string(own.cookie.Value())})
			require.Less(t, r.status, 300, string(r.body))
			assert.Nil(t, r.cookie)
		})
	}
	// The forwarded value is still used for that request (a backend's
	// server-side decide).
	r := call(t, h.public, "POST", "/v1/decide", `{"visitor":"`+planted+`","slots":["home-hero"]}`, map[string]string{"X-Api-Key": testAPIKey})
	assert.Equal(t, "hero-sneakers", blockID(t, r, "home-hero"))
	assert.Equal(t, planted, r.json(t)["visitor"], "API-key callers get the visitor value")
	assert.Nil(t, r.cookie)
}

// TestVisitorOnlyForAPIKeyCallers: the cookie value is a credential; it is
// in the body of answers to API-key callers only.
func TestVisitorOnlyForAPIKeyCallers(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ name, method, uri, body string }{
		{"POST decide", "POST", "/v1/decide", `{"slots":["home-hero"],"events":[` + pageViews("/a") + `]}`},
		{"GET decide", "GET", "/v1/decide?slots=home-hero", ""},
		{"events", "POST", "/v1/events", `{"events":[` + pageViews("/a") + `]}`},
		{"reset", "POST", "/v1/reset", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, h.public, tc.method, tc.uri, tc.body, nil)
			require.Less(t, r.status, 300, string(r.body))
			require.NotNil(t, r.cookie)
			assert.NotContains(t, string(r.body), `"visitor"`)
			assert.NotContains(t, string(r.body), string(r.cookie.Value()))
			r = call(t, h.public, tc.method, tc.uri, tc.body, map[string]string{"Authorization": "Bearer " + testAPIKey})
			require.Less(t, r.status, 300, string(r.body))
			v, _ := r.json(t)["visitor"].(string)
			assert.NotEmpty(t, v, "API-key callers get the visitor value")
		})
	}
	me := call(t, h.public, "GET", "/demo/api/me", "", map[string]string{"Cookie": "etl=" + string(h.decide(t, "", `{}`).cookie.Value())})
	assert.NotContains(t, string(me.body), `"visitor"`)
}

// TestAPIKeyCallersAreNeverBots: the shop backend's HTTP client is no bot;
// its events are stored, not acknowledged and dropped.
func TestAPIKeyCallersAreNeverBots(t *testing.T) {
	h := newHarness(t, nil)
	for _, ua := range []string{"curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1", "node-fetch", ""} {
		t.Run(ua, func(t *testing.T) {
			hdr := map[string]string{"User-Agent": ua, "X-Api-Key": testAPIKey}
			r := call(t, h.public, "POST", "/v1/events", `{"contact":{"customer_id":"c-`+itoa(int64(len(ua)))+`"},"events":[{"type":"purchase","order_id":"o-1","items":[{"sku":"shoe","price":10}]}]}`, hdr)
			require.Equal(t, 202, r.status, string(r.body))
			assert.EqualValues(t, 1, r.json(t)["accepted"], "the order is stored")
			exp := h.adminCall(t, "GET", "/admin/v1/profiles/customer:c-"+itoa(int64(len(ua))), "")
			require.Equal(t, 200, exp.status, string(exp.body))
			assert.Contains(t, string(exp.body), "o-1")

			d := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers")+`]}`, hdr)
			require.Equal(t, 200, d.status)
			v, _ := d.json(t)["visitor"].(string)
			require.NotEmpty(t, v, "a backend's decide creates and stores a visitor")
			exp = h.adminCall(t, "GET", "/admin/v1/profiles/"+v, "")
			assert.Equal(t, 200, exp.status, "the page view was stored")

			// Without the key the same clients are bots: nothing stored.
			r = call(t, h.public, "POST", "/v1/events", `{"events":[`+pageViews("/a")+`]}`, map[string]string{"User-Agent": "curl/8.5.0"})
			assert.EqualValues(t, 0, r.json(t)["accepted"])
		})
	}
	// A bot's user agent forwarded by the backend in the context is still
	// a bot visit: a crawler rendered server-side writes nothing.
	d := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"context":{"user_agent":"Googlebot/2.1 (+http://www.google.com/bot.html)"},"events":[`+pageViews("/a")+`]}`,
		map[string]string{"X-Api-Key": testAPIKey})
	require.Equal(t, 200, d.status)
	assert.NotContains(t, d.json(t), "visitor")
}

// TestAPIKeyCallersNotRateLimited: a shop backend behind one address sends
// far more than one browser; with the key it is never limited.
func TestAPIKeyCallersNotRateLimited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 1 })
	for i := 0; i < 100; i++ {
		r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, map[string]string{"X-Api-Key": testAPIKey})
		require.Equal(t, 200, r.status, "request %d", i)
	}
	call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, nil)
	r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, nil)
	assert.Equal(t, 429, r.status, "browsers still are")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// storedProfiles counts the profiles in h's store.
func storedProfiles(t *testing.T, h *harness) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		ids, next, err := h.srv.profiles.Scan(t.Context(), cursor, 100)
		require.NoError(t, err)
		n += len(ids)
		if next == "" {
			return n
		}
		cursor = next
	}
}

// TestConsentRequired: with --consent required nothing is stored and no
// cookie set before profiling consent; such a visitor gets decisions from
// the request context alone.
func TestConsentRequired(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ConsentNeeded = true })
	views := pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")
	for _, tc := range []struct{ name, method, uri, body string }{
		{"decide with events", "POST", "/v1/decide", `{"slots":["home-hero"],"events":[` + views + `,{"type":"identify","email":"a@example.nl"},{"type":"interest","name":"x","on":true}]}`},
		{"GET decide", "GET", "/v1/decide?slots=home-hero", ""},
		{"events", "POST", "/v1/events", `{"events":[` + views + `]}`},
		{"consent withheld", "POST", "/v1/decide", `{"slots":["home-hero"],"events":[{"type":"consent","purposes":{"profiling":false}}]}`},
		{"reset", "POST", "/v1/reset", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, h.public, tc.method, tc.uri, tc.body, nil)
			require.Less(t, r.status, 300, string(r.body))
			if r.cookie != nil {
				assert.LessOrEqual(t, r.cookie.MaxAge(), 0, "only a cookie that removes one")
				assert.Empty(t, r.cookie.Value())
			}
			assert.NotContains(t, string(r.body), "hero-sneakers")
			assert.Equal(t, 0, storedProfiles(t, h), "nothing stored before consent")
		})
	}
	// With the API key and no visitor: the same, no visitor is created.
	r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"events":[`+views+`]}`, map[string]string{"X-Api-Key": testAPIKey})
	require.Equal(t, 200, r.status)
	assert.NotContains(t, r.json(t), "visitor")
	assert.Equal(t, 0, storedProfiles(t, h))

	// Consent given: the cookie comes, the events of the same request count.
	r = h.decide(t, "", `{"slots":["home-hero"],"events":[{"type":"consent","purposes":{"profiling":true}},`+views+`]}`)
	require.Equal(t, 200, r.status)
	require.NotNil(t, r.cookie)
	assert.Equal(t, "hero-sneakers", blockID(t, r, "home-hero"))
	assert.Equal(t, 1, storedProfiles(t, h))
	again := h.decide(t, string(r.cookie.Value()), `{"slots":["home-hero"],"events":[`+pageViews("/x")+`]}`)
	assert.Equal(t, "hero-sneakers", blockID(t, again, "home-hero"), "a returning visitor with consent is profiled")

	// Logout under required consent: the cookie goes, no new one comes.
	out := call(t, h.public, "POST", "/v1/reset", "", map[string]string{"Cookie": "etl=" + string(r.cookie.Value())})
	require.NotNil(t, out.cookie)
	assert.LessOrEqual(t, out.cookie.MaxAge(), 0, "max-age=0 removes it")
}

// TestErasedBrowserStartsNewVisitor: after erasure the browser's next
// request gets a new visitor id; the erased id never comes back.
func TestErasedBrowserStartsNewVisitor(t *testing.T) {
	h := newHarness(t, nil)
	for _, via := range []string{"decide", "events"} {
		t.Run(via, func(t *testing.T) {
			first := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
			old := string(first.cookie.Value())
			r := h.adminCall(t, "DELETE", "/admin/v1/profiles/"+old, "")
			require.Equal(t, 200, r.status, string(r.body))

			var next *response
			if via == "decide" {
				next = h.decide(t, old, `{"slots":["home-hero"],"events":[`+pageViews("/after")+`]}`)
				assert.NotEqual(t, "hero-sneakers", blockID(t, next, "home-hero"))
			} else {
				next = call(t, h.public, "POST", "/v1/events", `{"events":[`+pageViews("/after")+`]}`, map[string]string{"Cookie": "etl=" + old})
				require.Equal(t, 202, next.status, string(next.body))
			}
			require.NotNil(t, next.cookie)
			assert.NotEqual(t, old[:idLen], string(next.cookie.Value())[:idLen], "a new visitor id")
			gone := h.adminCall(t, "GET", "/admin/v1/profiles/"+old, "")
			assert.Equal(t, 404, gone.status, "the erased id was not brought back: %s", gone.body)
			now := h.adminCall(t, "GET", "/admin/v1/profiles/"+string(next.cookie.Value()), "")
			require.Equal(t, 200, now.status)
			assert.Contains(t, string(now.body), "/after", "the request's events went to the new visitor")
		})
	}
	t.Run("a contact on two devices, erased by e-mail", func(t *testing.T) {
		proven := `{"type":"identify","email":"gone@example.nl","token":"` + token(t, "email:gone@example.nl") + `"}`
		a := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/a")+`,`+proven+`]}`)
		b := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/b")+`]}`)
		bOld := string(b.cookie.Value())
		b = h.decide(t, bOld, `{"slots":["home-hero"],"events":[`+proven+`]}`)
		require.Equal(t, string(a.cookie.Value()), string(b.cookie.Value()), "merged")
		r := h.adminCall(t, "DELETE", "/admin/v1/profiles/email:gone@example.nl", "")
		require.Equal(t, 200, r.status, string(r.body))
		for _, old := range []string{string(a.cookie.Value()), bOld} {
			next := h.decide(t, old, `{"slots":["home-hero"],"events":[`+pageViews("/again")+`]}`)
			require.NotNil(t, next.cookie)
			assert.NotEqual(t, old[:idLen], string(next.cookie.Value())[:idLen], "a new visitor id")
			assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/profiles/"+old, "").status)
		}
	})
}

// TestCookieMissingStoresNoOrphans: a browser whose snippet had an answer
// before but whose requests come without the cookie (etalage on another
// site than the shop: the browser blocks its cookie) stores nothing, so
// no orphan profile is made per page view; it is told so.
func TestCookieMissingStoresNoOrphans(t *testing.T) {
	h := newHarness(t, nil)
	first := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/a")+`]}`)
	require.NotNil(t, first.cookie)
	assert.NotContains(t, first.json(t), "cookie", "a first visit is stored as usual")
	require.Equal(t, 1, storedProfiles(t, h))
	for i := 0; i < 5; i++ {
		r := h.decide(t, "", `{"slots":["home-hero"],"returning":true,"events":[`+pageViews("/demo/c/sneakers")+`]}`)
		require.Equal(t, 200, r.status, string(r.body))
		assert.Equal(t, "missing", r.json(t)["cookie"])
		e := call(t, h.public, "POST", "/v1/events", `{"returning":true,"events":[`+pageViews("/b")+`]}`, nil)
		require.Equal(t, 202, e.status)
		assert.Equal(t, "missing", e.json(t)["cookie"])
		assert.EqualValues(t, 0, e.json(t)["accepted"])
	}
	assert.Equal(t, 1, storedProfiles(t, h), "no orphan profile per page view")

	// A browser that merely lost its cookie gets one, and its next request
	// (with the cookie) stores the events the snippet kept.
	r := h.decide(t, "", `{"slots":["home-hero"],"returning":true,"events":[`+pageViews("/demo/c/sneakers")+`]}`)
	require.NotNil(t, r.cookie)
	r = h.decide(t, string(r.cookie.Value()), `{"slots":["home-hero"],"returning":true,"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
	assert.NotContains(t, r.json(t), "cookie")
	assert.Equal(t, "hero-sneakers", blockID(t, r, "home-hero"))
	// The shop backend (API key) is never affected.
	r = call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"returning":true,"events":[`+pageViews("/x")+`]}`, map[string]string{"X-Api-Key": testAPIKey})
	assert.NotContains(t, r.json(t), "cookie")
}
