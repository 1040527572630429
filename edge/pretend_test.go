package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// pretendBrowser is one browser of the demo: its visitor cookie and its
// pretend cookie, as a browser keeps them between requests.
type pretendBrowser struct {
	h                *harness
	visitor, pretend string
}

func (b *pretendBrowser) cookies() map[string]string {
	var c []string
	if b.visitor != "" {
		c = append(c, "etl="+b.visitor)
	}
	if b.pretend != "" {
		c = append(c, pretendCookie+"="+b.pretend)
	}
	return map[string]string{"Cookie": strings.Join(c, "; ")}
}

// decide sends a decide with events (JSON array items) and keeps the
// visitor cookie; it answers the segments.
func (b *pretendBrowser) decide(t *testing.T, events string) []string {
	t.Helper()
	r := call(t, b.h.public, "POST", "/v1/decide", `{"slots":["home-moment","home-cart"],"events":[`+events+`]}`, b.cookies())
	require.Equal(t, 200, r.status, string(r.body))
	if r.cookie != nil {
		b.visitor = string(r.cookie.Value())
	}
	var segs []string
	for _, s := range r.json(t)["segments"].([]any) {
		segs = append(segs, s.(string))
	}
	return segs
}

// pretendTo posts body to /demo/api/pretend and keeps the cookie it sets.
func (b *pretendBrowser) pretendTo(t *testing.T, body string) *response {
	t.Helper()
	r := call(t, b.h.public, "POST", "/demo/api/pretend", body, b.cookies())
	if sc := r.headers["Set-Cookie"]; sc != "" {
		c := fasthttp.AcquireCookie()
		defer fasthttp.ReleaseCookie(c)
		require.NoError(t, c.Parse(sc))
		require.Equal(t, pretendCookie, string(c.Key()))
		assert.True(t, c.HTTPOnly(), "page scripts never see the pretense")
		b.pretend = string(c.Value())
	}
	return r
}

func pretendHarness(t *testing.T, on bool) *harness {
	return newHarness(t, func(c *Config) { c.DemoPretend = on })
}

// TestPretendReachesEverySegment: each time- and device-dependent demo
// segment is reached by pretending, through the browser's own requests;
// coming back "tomorrow" is a real second visit and leaves a real cart
// behind, and a gift put in the cart "on 10 December" is a Christmas one.
// (testNow is Tuesday 24 November 2026, 13:00 in Amsterdam.)
func TestPretendReachesEverySegment(t *testing.T) {
	h := pretendHarness(t, true)
	for _, tc := range []struct {
		name   string
		steps  func(t *testing.T, b *pretendBrowser)
		want   []string
		absent []string
	}{
		{name: "saturday morning", steps: func(t *testing.T, b *pretendBrowser) {
			require.Equal(t, 200, b.pretendTo(t, `{"at":"saturday-morning"}`).status)
		}, want: []string{"weekend"}, absent: []string{"evening"}},
		{name: "a weekday evening", steps: func(t *testing.T, b *pretendBrowser) {
			r := b.pretendTo(t, `{"at":"weekday-evening"}`)
			require.Equal(t, 200, r.status)
			assert.Equal(t, "2026-11-24T20:30:00+01:00", r.json(t)["now"], "the same Tuesday, 20:30")
		}, want: []string{"evening"}, absent: []string{"weekend"}},
		{name: "a phone in the Netherlands", steps: func(t *testing.T, b *pretendBrowser) {
			require.Equal(t, 200, b.pretendTo(t, `{"phone":true}`).status)
		}, want: []string{"mobile-nl"}, absent: []string{"desktop", "returning-visitors"}},
		{name: "coming back tomorrow", steps: func(t *testing.T, b *pretendBrowser) {
			require.Equal(t, 200, b.pretendTo(t, `{"at":"tomorrow"}`).status)
		}, want: []string{"returning-visitors", "not-yet-buyers"}},
		{name: "a cart left until tomorrow", steps: func(t *testing.T, b *pretendBrowser) {
			b.decide(t, `{"type":"cart_add","sku":"sneaker-court","category":"sneakers","price":89}`)
			require.Equal(t, 200, b.pretendTo(t, `{"at":"tomorrow"}`).status)
		}, want: []string{"cart-abandoners", "cart-holders"}},
		{name: "a gift in the cart on 10 December", steps: func(t *testing.T, b *pretendBrowser) {
			require.Equal(t, 200, b.pretendTo(t, `{"at":"december-10"}`).status)
			b.decide(t, `{"type":"cart_add","sku":"playmobil-sint","category":"toys","price":39.99,"gift":true}`)
		}, want: []string{"christmas-shoppers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &pretendBrowser{h: h}
			first := b.decide(t, pageViews("/demo/"))
			for _, s := range tc.want {
				require.NotContains(t, first, s, "not reachable before pretending")
			}
			tc.steps(t, b)
			segs := b.decide(t, pageViews("/demo/"))
			for _, s := range tc.want {
				assert.Contains(t, segs, s)
			}
			for _, s := range tc.absent {
				assert.NotContains(t, segs, s)
			}

			// Without the pretend cookie the same browser is back in
			// the real time and on its own device.
			real := &pretendBrowser{h: h, visitor: b.visitor}
			segs = real.decide(t, "")
			for _, s := range []string{"weekend", "evening", "mobile-nl", "christmas-shoppers"} {
				assert.NotContains(t, segs, s, "the pretense is this request's only")
			}
		})
	}
}

// TestPretendIsTheBrowsersOwn: the pretense never reaches beyond the
// browser's own requests in pretend mode: a server without pretend mode
// ignores a cookie signed with the same key and has no route; a forged
// cookie is ignored; an API-key call forwarding a visitor is never
// pretended; bad input is a 400 that sets nothing.
func TestPretendIsTheBrowsersOwn(t *testing.T) {
	on := pretendHarness(t, true)
	b := &pretendBrowser{h: on}
	b.decide(t, pageViews("/demo/"))
	require.Equal(t, 200, b.pretendTo(t, `{"at":"saturday-morning","phone":true}`).status)
	require.Contains(t, b.decide(t, ""), "weekend")

	t.Run("not in pretend mode", func(t *testing.T) {
		off := pretendHarness(t, false)
		ob := &pretendBrowser{h: off}
		ob.decide(t, "")
		ob.pretend = b.pretend // the same cookie key as the harness above
		segs := ob.decide(t, pageViews("/demo/"))
		assert.NotContains(t, segs, "weekend")
		assert.NotContains(t, segs, "mobile-nl")
		r := call(t, off.public, "POST", "/demo/api/pretend", `{"at":"tomorrow"}`, nil)
		assert.Equal(t, 404, r.status)
		assert.Empty(t, r.headers["Set-Cookie"])
	})
	t.Run("forged", func(t *testing.T) {
		for _, v := range []string{"86400.mobile.nl.AAAAAAAAAAAAAAAAAAAAAA", "86400.mobile.nl", strings.Replace(b.pretend, "mobile", "tablet", 1)} {
			fb := &pretendBrowser{h: on, visitor: b.visitor, pretend: v}
			segs := fb.decide(t, "")
			assert.NotContains(t, segs, "weekend", v)
			assert.NotContains(t, segs, "mobile-nl", v)
		}
	})
	t.Run("the API key", func(t *testing.T) {
		hdr := b.cookies()
		hdr["Authorization"] = "Bearer " + testAPIKey
		r := call(t, on.public, "POST", "/v1/decide", `{"visitor":"`+b.visitor+`","slots":["home-moment"]}`, hdr)
		require.Equal(t, 200, r.status, string(r.body))
		assert.NotContains(t, string(r.body), "weekend", "the shop backend's call is never pretended")
		r = call(t, on.public, "POST", "/v1/decide", `{"slots":["home-moment"]}`, hdr)
		require.Equal(t, 200, r.status, string(r.body))
		assert.NotContains(t, string(r.body), "weekend", "nor with the browser's cookies")
	})
	t.Run("bad input", func(t *testing.T) {
		for _, body := range []string{`{"at":"yesterday"}`, `{"phone":"yes"}`, `[1]`, `nope`, `{"at":"saturday-morning","phone":1}`} {
			r := call(t, on.public, "POST", "/demo/api/pretend", body, b.cookies())
			assert.Equal(t, 400, r.status, body)
			assert.Equal(t, ECodeInvalid, errorCode(t, r))
			assert.Empty(t, r.headers["Set-Cookie"], "a refused pretense changes nothing")
		}
		r := call(t, on.public, "GET", "/demo/api/pretend", "", b.cookies())
		require.Equal(t, 200, r.status)
		assert.Equal(t, "mobile", r.json(t)["device"], "still pretending what it did")
	})
	t.Run("at most a year ahead", func(t *testing.T) {
		yb := &pretendBrowser{h: on}
		var r *response
		for range 3 {
			r = yb.pretendTo(t, `{"at":"december-10"}`)
			if r.status != 200 {
				break
			}
		}
		assert.Equal(t, 400, r.status, "10 December a year after the next is more than a year ahead: %s", r.body)
		assert.Contains(t, errMessage(t, r), "more than a year ahead")
	})
	t.Run("stop", func(t *testing.T) {
		require.Equal(t, 200, b.pretendTo(t, `{"at":"now","phone":false}`).status)
		r := call(t, on.public, "POST", "/demo/api/pretend", `{"at":"now","phone":false}`, b.cookies())
		assert.Contains(t, r.headers["Set-Cookie"], "expires=", "stopping deletes the cookie")
		assert.Equal(t, false, r.json(t)["pretending"])
	})
}

func errMessage(t *testing.T, r *response) string {
	t.Helper()
	return r.json(t)["error"].(map[string]any)["message"].(string)
}
