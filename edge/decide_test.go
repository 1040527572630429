package edge

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const slots3 = `"slots":["home-hero","banner-top","home-picks"]`

func TestDecideNewVisitorGetsCookie(t *testing.T) {
	h := newHarness(t, nil)
	r := h.decide(t, "", `{`+slots3+`}`)
	require.Equal(t, 200, r.status, string(r.body))
	require.NotNil(t, r.cookie, "a new visitor gets the cookie from the service")
	c := r.cookie
	assert.True(t, c.HTTPOnly())
	assert.True(t, c.Secure())
	assert.Equal(t, "/", string(c.Path()))
	assert.Equal(t, cookieMaxAge, c.MaxAge())
	assert.Equal(t, "private, no-store", r.headers["Cache-Control"])
	assert.Contains(t, r.headers["Set-Cookie"], "SameSite=Lax")
	body := r.json(t)
	assert.NotContains(t, body, "visitor", "the cookie value is a credential: never in a browser's answer")
	assert.Equal(t, false, body["degraded"])
	blocks := body["blocks"].(map[string]any)
	assert.Len(t, blocks, 3)
	assert.NotEmpty(t, blockID(t, r, "home-hero"), "the default hero")
}

func TestDecideCookieInsecureForLocalHTTP(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CookieSecure = false })
	r := h.decide(t, "", `{`+slots3+`}`)
	require.NotNil(t, r.cookie)
	assert.False(t, r.cookie.Secure())
}

func TestDecideKeepsAndRenewsValidCookie(t *testing.T) {
	h := newHarness(t, nil)
	first := h.decide(t, "", `{`+slots3+`}`)
	v := string(first.cookie.Value())
	again := h.decide(t, v, `{`+slots3+`}`)
	require.NotNil(t, again.cookie, "the cookie is renewed on visits")
	assert.Equal(t, v, string(again.cookie.Value()))
}

func TestDecideForgedCookieIsNewVisitor(t *testing.T) {
	h := newHarness(t, nil)
	first := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers")+`]}`)
	v := string(first.cookie.Value())
	other := NewSigner([][]byte{[]byte("someone-elses-secret-key")})
	forgeries := map[string]string{
		"tampered tag": v[:len(v)-1] + string("AB"[(v[len(v)-1]%2)]),
		"truncated":    v[:len(v)-5],
		"other key":    other.Sign(v[:idLen]),
		"garbage":      "not-a-cookie",
		"id swapped":   NewID() + v[idLen:],
	}
	for name, forged := range forgeries {
		t.Run(name, func(t *testing.T) {
			r := h.decide(t, forged, `{"slots":["home-hero"]}`)
			require.Equal(t, 200, r.status, "a forged cookie is never an error")
			require.NotNil(t, r.cookie)
			assert.NotEqual(t, v, string(r.cookie.Value()))
			assert.NotEqual(t, v[:idLen], string(r.cookie.Value())[:idLen], "a forged cookie never reaches the profile it names")
		})
	}
}

func TestDecideBotsAndPrefetchGetNoCookieAndWriteNothing(t *testing.T) {
	h := newHarness(t, nil)
	cases := map[string]map[string]string{
		"googlebot":       {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
		"headless chrome": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"},
		"prefetch":        {"Sec-Purpose": "prefetch"},
		"old prefetch":    {"Purpose": "prefetch"},
		"prerender":       {"Sec-Purpose": "Prefetch;Prerender"},
		"firefox":         {"X-Moz": "PREFETCH"},
		"preview":         {"X-Purpose": "preview"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`, hdr)
			require.Equal(t, 200, r.status, string(r.body))
			assert.Nil(t, r.cookie)
			assert.NotContains(t, r.headers, "Set-Cookie")
			assert.Nil(t, r.json(t)["visitor"])
		})
	}
	pids, _, err := h.store.Scan(t.Context(), "", 100)
	require.NoError(t, err)
	assert.Empty(t, pids, "bots and prefetches never write a profile")
}

func TestDecideBehaviourSwitchesHero(t *testing.T) {
	h := newHarness(t, nil)
	r := h.decide(t, "", `{"slots":["home-hero"]}`)
	v := string(r.cookie.Value())
	def := blockID(t, r, "home-hero")
	for i := 0; i < 3; i++ {
		r = h.decide(t, v, `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers")+`]}`)
		require.Equal(t, 200, r.status, string(r.body))
	}
	assert.Equal(t, "hero-sneakers", blockID(t, r, "home-hero"))
	assert.NotEqual(t, def, "hero-sneakers")
	assert.Contains(t, r.json(t)["segments"], "sneaker-fans")

	// A warm decide for the same visitor answers from the cache.
	before := h.srv.metrics.cacheHits.Get()
	r = call(t, h.public, "GET", "/v1/decide?slots=home-hero,banner-top", "", map[string]string{"Cookie": "etl=" + v})
	require.Equal(t, 200, r.status)
	assert.Equal(t, "hero-sneakers", blockID(t, r, "home-hero"))
	assert.Greater(t, h.srv.metrics.cacheHits.Get(), before)
}

func TestDecideSeasonalGiftPurchase(t *testing.T) {
	h := newHarness(t, nil)
	purchase := `{"type":"purchase","order_id":"o-1","items":[{"sku":"playmobil-sint","category":"toys","price":39.99,"gift":true}]}`
	r := h.decide(t, "", `{`+slots3+`,"events":[`+purchase+`]}`)
	require.Equal(t, 200, r.status, string(r.body))
	assert.Equal(t, "sint-banner", blockID(t, r, "banner-top"))
	segs := r.json(t)["segments"].([]any)
	assert.Contains(t, segs, "sint-gift-buyers")
	for _, s := range segs {
		assert.NotContains(t, s.(string), "toy", "a gift never makes the buyer a toy fan")
	}
}

func TestDecideBadInput(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name, body string
	}{
		{"malformed JSON", `{"slots":`},
		{"not an object", `["home-hero"]`},
		{"unknown field", `{"slots":["home-hero"],"colour":"red"}`},
		{"slots not strings", `{"slots":[1,2]}`},
		{"too many slots", `{"slots":[` + strings.Repeat(`"s",`, 40) + `"s"]}`},
		{"unknown event type", `{"slots":["home-hero"],"events":[{"type":"teleport"}]}`},
		{"events not an array", `{"events":{"type":"page_view"}}`},
		{"context not an object", `{"context":"x"}`},
		{"context unknown field", `{"context":{"colour":"red"}}`},
		{"past ts without API key", `{"events":[{"type":"page_view","url":"/a","ts":"2020-01-01T00:00:00Z"}]}`},
		{"invalid UTF-8", "{\"slots\":[\"\xff\"]}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.decide(t, "", tt.body)
			assert.Equal(t, 400, r.status, string(r.body))
			assert.Equal(t, ECodeInvalid, errorCode(t, r))
			assert.Nil(t, r.cookie, "a rejected request sets nothing")
		})
	}
	// The query form checks its slots and fields the same way.
	for name, q := range map[string]string{
		"too many slots":    "slots=" + strings.Repeat("s,", 40) + "s",
		"slot too long":     "slots=" + strings.Repeat("s", 65),
		"invalid UTF-8":     "slots=%FF",
		"unknown parameter": "slots=home-hero&colour=red",
		"url too long":      "slots=home-hero&url=" + strings.Repeat("a", 2049),
	} {
		t.Run("GET "+name, func(t *testing.T) {
			r := call(t, h.public, "GET", "/v1/decide?"+q, "", nil)
			assert.Equal(t, 400, r.status, string(r.body))
			assert.Equal(t, ECodeInvalid, errorCode(t, r))
			assert.Nil(t, r.cookie, "a rejected request sets nothing")
		})
	}
	r := call(t, h.public, "GET", "/v1/decide?slots=home-hero,,banner-top,&language=nl-NL", "", nil)
	require.Equal(t, 200, r.status, string(r.body))
	assert.Len(t, r.json(t)["blocks"], 2, "empty names between commas are no slots")
	pids, _, err := h.store.Scan(t.Context(), "", 100)
	require.NoError(t, err)
	assert.Empty(t, pids, "bad input changes nothing")
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, nil)
	big := `{"slots":["home-hero"],"context":{"url":"` + strings.Repeat("a", 2<<20) + `"}}`
	r := h.decide(t, "", big)
	assert.Equal(t, 413, r.status)
	assert.Equal(t, ECodeTooLarge, errorCode(t, r))
}

func TestSnippetETag(t *testing.T) {
	h := newHarness(t, nil)
	r := call(t, h.public, "GET", "/snippet.js", "", map[string]string{"Accept-Encoding": "gzip"})
	require.Equal(t, 200, r.status)
	etag := r.headers["Etag"]
	require.NotEmpty(t, etag)
	assert.Equal(t, "gzip", r.headers["Content-Encoding"])
	assert.Contains(t, r.headers["Cache-Control"], "max-age")
	r = call(t, h.public, "GET", "/snippet.js", "", map[string]string{"If-None-Match": etag})
	assert.Equal(t, 304, r.status)
}

func TestCORS(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedOrigins = []string{"https://shop.example"} })
	r := call(t, h.public, "OPTIONS", "/v1/decide", "", map[string]string{"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
	assert.Equal(t, 204, r.status)
	assert.Equal(t, "https://shop.example", r.headers["Access-Control-Allow-Origin"])
	assert.Equal(t, "true", r.headers["Access-Control-Allow-Credentials"])
	r = call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, map[string]string{"Origin": "https://evil.example"})
	assert.Equal(t, 200, r.status)
	assert.NotContains(t, r.headers, "Access-Control-Allow-Origin")
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimit = 5; c.RateBurst = 5 })
	limited := 0
	for i := 0; i < 20; i++ {
		r := h.decide(t, "", `{"slots":["home-hero"]}`)
		if r.status == 429 {
			limited++
			assert.Equal(t, ECodeRateLimited, errorCode(t, r))
		}
	}
	assert.GreaterOrEqual(t, limited, 10)
	// The shop backend, with the API key, is not limited.
	r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, map[string]string{"X-Api-Key": testAPIKey})
	assert.Equal(t, 200, r.status)
}

// The pre-encoded answers of static blocks are byte for byte what encoding
// each decision would give.
func TestStaticBlocksEncodeAsDecided(t *testing.T) {
	h := newHarness(t, nil)
	d := h.srv.defs.Load()
	require.NotEmpty(t, d.blockJSON)
	static := 0
	for _, b := range d.set.Blocks() {
		html, ok := b.StaticHTML()
		if !ok {
			continue
		}
		static++
		var h []byte
		if b.HasHTML() {
			h = []byte(html)
		}
		assert.Equal(t, string(appendBlock(nil, b, h)), string(d.blockJSON[b]), b.ID)
	}
	assert.Len(t, d.blockJSON, static)
	v := visitorWithProfile(t, h)
	r := h.decide(t, "", `{"visitor":"`+v+`","slots":["home-hero","banner-top","home-picks","no-such-slot"]}`)
	require.Equal(t, 200, r.status)
	pid, ok := h.srv.signer.Verify([]byte(v))
	require.True(t, ok)
	snap, err := h.srv.load(t.Context(), pid, d, nil)
	require.NoError(t, err)
	var dec rules.Decision
	in := rules.Input{Profile: snap.Primary, Seasonal: snap.Seasonal, Now: h.srv.cfg.Now()}
	in.Context.Device, in.Context.Browser, in.Context.OS = "desktop", "chrome", "linux"
	d.set.Decide(&in, []string{"home-hero", "banner-top", "home-picks", "no-such-slot"}, &dec)
	assert.Equal(t, string(appendDecision(nil, v, &dec, false, nil)), string(appendDecision(nil, v, &dec, false, d.blockJSON)))
}

// Many decides carrying events at once on the embedded store, with a write
// deadline too short for all of them: each answer is either personalised
// with its events stored, or degraded with its events not stored (the
// snippet retries those through /v1/events, so a degraded answer whose
// events landed anyway would count them twice).
func TestDecideWithEventsIsStoredOrDegraded(t *testing.T) {
	const writers = 64
	h := newHarness(t, func(c *Config) { c.WriteDeadline = 3 * time.Millisecond })
	// The first request builds the user-agent matcher (seconds under
	// -race); the writers should meet only the store.
	require.Equal(t, 200, h.decide(t, "", `{"slots":["home-hero"]}`).status)
	type answer struct {
		pid      string
		degraded bool
	}
	answers := make([]answer, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/w/"+strconv.Itoa(i))+`]}`)
			if !assert.Equal(t, 200, r.status, string(r.body)) {
				return
			}
			var body map[string]any
			require.NoError(t, json.Unmarshal(r.body, &body))
			pid, ok := h.srv.signer.Verify(r.cookie.Value())
			require.True(t, ok)
			answers[i] = answer{pid: pid, degraded: body["degraded"] == true}
		}()
	}
	wg.Wait()
	degraded := 0
	for i, a := range answers {
		require.NotEmpty(t, a.pid)
		snap, err := h.srv.profiles.Load(context.Background(), a.pid, h.srv.defs.Load().policy)
		require.NoError(t, err)
		stored := len(snap.Primary.Behaviour) > 0
		if a.degraded {
			degraded++
		}
		assert.Equal(t, !a.degraded, stored, "writer %d: degraded=%v but stored=%v", i, a.degraded, stored)
	}
	t.Logf("%d of %d decides degraded", degraded, writers)
}
