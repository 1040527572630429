package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdminAuth(t *testing.T) {
	h := newHarness(t, nil)
	r := call(t, h.admin, "GET", "/admin/v1/definitions", "", nil)
	assert.Equal(t, 401, r.status)
	assert.Equal(t, ECodeUnauthorized, errorCode(t, r))
	r = call(t, h.admin, "GET", "/admin/v1/definitions", "", map[string]string{"Authorization": "Bearer nope"})
	assert.Equal(t, 403, r.status)
	r = h.adminCall(t, "GET", "/admin/v1/definitions", "")
	assert.Equal(t, 200, r.status)
	for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
		r = call(t, h.admin, "GET", open, "", nil)
		assert.Equal(t, 200, r.status, open)
	}
	// The profiler is behind the token too.
	r = call(t, h.admin, "GET", "/debug/pprof/heap", "", nil)
	assert.Equal(t, 401, r.status)
	r = h.adminCall(t, "GET", "/debug/pprof/heap?debug=1", "")
	assert.Equal(t, 200, r.status)
	assert.Contains(t, string(r.body), "heap profile")
}

func TestMetricsExposition(t *testing.T) {
	h := newHarness(t, nil)
	h.decide(t, "", `{"slots":["home-hero"]}`)
	r := call(t, h.admin, "GET", "/metrics", "", nil)
	require.Equal(t, 200, r.status)
	body := string(r.body)
	assert.Contains(t, body, `etalage_http_requests_total{route="decide",code="200"} 1`)
	assert.Contains(t, body, `etalage_http_request_duration_seconds_bucket{route="decide",le=`)

	// Every family is announced with # HELP and # TYPE before its samples,
	// as Prometheus and Grafana expect.
	typed := map[string]bool{}
	helped := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			helped[strings.Fields(f)[0]] = true
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && typed[base] {
				family = base
			}
		}
		assert.True(t, typed[family], "no # TYPE before %s", name)
		assert.True(t, helped[family], "no # HELP before %s", name)
	}
	assert.NotEmpty(t, typed)
}

func TestDefinitionsRejectedKeepsRunning(t *testing.T) {
	h := newHarness(t, nil)
	before := h.adminCall(t, "GET", "/admin/v1/definitions", "").json(t)
	bad := "segments:\n  - id: a\n    rule: {field: profile.x, frobnicate: 1}\n  - id: a\n    parent: nope\n    rule: {interest: x}\n"
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", bad)
	require.Equal(t, 422, r.status, string(r.body))
	errs := r.json(t)["errors"].([]any)
	assert.GreaterOrEqual(t, len(errs), 2, "every problem at once")
	for _, e := range errs {
		assert.NotEmpty(t, e.(map[string]any)["path"])
	}
	after := h.adminCall(t, "GET", "/admin/v1/definitions", "").json(t)
	assert.Equal(t, before, after)
	d := h.decide(t, "", `{"slots":["home-hero"]}`)
	assert.Equal(t, 200, d.status)
}

func TestDefinitionsApplyAndSwap(t *testing.T) {
	h := newHarness(t, nil)
	doc := "blocks:\n  - {id: only-hero, slot: home-hero, html: \"<h1>Hi {{ .profile.first_name }}</h1>\"}\n"
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", doc)
	require.Equal(t, 200, r.status, string(r.body))
	rev := r.json(t)["revision"].(float64)
	assert.GreaterOrEqual(t, rev, 1.0)
	got := h.adminCall(t, "GET", "/admin/v1/definitions", "").json(t)
	assert.Equal(t, doc, got["document"])
	assert.Equal(t, rev, got["revision"])
	d := h.decide(t, "", `{"slots":["home-hero"],"events":[{"type":"identify","email":"x@example.nl","fields":{"first_name":"<b>Eve</b>"}}]}`)
	require.Equal(t, 200, d.status, string(d.body))
	assert.Equal(t, "only-hero", blockID(t, d, "home-hero"))
	html := d.json(t)["blocks"].(map[string]any)["home-hero"].(map[string]any)["html"].(string)
	assert.Equal(t, "<h1>Hi &lt;b&gt;Eve&lt;/b&gt;</h1>", html, "profile values are HTML-escaped")
}

func TestProfileExportAndErase(t *testing.T) {
	h := newHarness(t, nil)
	d := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers")+`,{"type":"identify","email":"erase@example.nl","token":"`+token(t, "email:erase@example.nl")+`"}]}`)
	require.Equal(t, 200, d.status, string(d.body))
	v := string(d.cookie.Value())
	for _, ref := range []string{v, "email:erase@example.nl"} {
		r := h.adminCall(t, "GET", "/admin/v1/profiles/"+ref, "")
		require.Equal(t, 200, r.status, string(r.body))
		assert.Contains(t, string(r.body), "/demo/c/sneakers")
	}
	r := h.adminCall(t, "DELETE", "/admin/v1/profiles/email:erase@example.nl", "")
	require.Equal(t, 200, r.status, string(r.body))
	r = h.adminCall(t, "GET", "/admin/v1/profiles/email:erase@example.nl", "")
	assert.Equal(t, 404, r.status)
	r = h.adminCall(t, "GET", "/admin/v1/profiles/"+v, "")
	assert.NotContains(t, string(r.body), "/demo/c/sneakers", "erased everywhere")
}

func TestSegmentMembersAndCount(t *testing.T) {
	h := newHarness(t, nil)
	fans := map[string]bool{}
	for i := 0; i < 3; i++ {
		d := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
		fans[string(d.cookie.Value())[:idLen]] = true
	}
	h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/running")+`]}`)
	r := h.adminCall(t, "GET", "/admin/v1/segments/sneaker-fans/count", "")
	require.Equal(t, 200, r.status, string(r.body))
	assert.EqualValues(t, 3, r.json(t)["count"])
	assert.EqualValues(t, 4, r.json(t)["scanned"])

	got := map[string]bool{}
	cursor := ""
	for pages := 0; pages < 20; pages++ {
		r = h.adminCall(t, "GET", "/admin/v1/segments/sneaker-fans/members?limit=2&cursor="+cursor, "")
		require.Equal(t, 200, r.status, string(r.body))
		for _, m := range r.json(t)["members"].([]any) {
			got[m.(string)] = true
		}
		cursor = r.json(t)["cursor"].(string)
		if cursor == "" {
			break
		}
	}
	assert.Equal(t, fans, got)
	r = h.adminCall(t, "GET", "/admin/v1/segments/no-such-segment/count", "")
	assert.Equal(t, 404, r.status)
}

func TestExplain(t *testing.T) {
	h := newHarness(t, nil)
	d := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
	v := string(d.cookie.Value())
	r := h.adminCall(t, "POST", "/admin/v1/explain", `{"visitor":"`+v+`","slots":["home-hero"]}`)
	require.Equal(t, 200, r.status, string(r.body))
	body := string(r.body)
	assert.Contains(t, body, "hero-sneakers")
	assert.Contains(t, body, "sneaker-fans")
	// A month later the views fall out of the 14-day window.
	r = h.adminCall(t, "POST", "/admin/v1/explain", `{"visitor":"`+v+`","slots":["home-hero"],"at":"2026-12-24T12:00:00Z"}`)
	require.Equal(t, 200, r.status, string(r.body))
	dec := r.json(t)["decision"].(map[string]any)
	assert.NotContains(t, dec["segments"], "sneaker-fans")
	r = h.adminCall(t, "POST", "/admin/v1/explain", `{"visitor":"`+v+`","at":"yesterday"}`)
	assert.Equal(t, 400, r.status)
	assert.True(t, strings.Contains(errorCode(t, r), "invalid"))
}

func TestAdminBadInputSaysSo(t *testing.T) {
	h := newHarness(t, nil)
	r := h.adminCall(t, "GET", "/admin/v1/segments/sneaker-fans/members?limit=abc", "")
	assert.Equal(t, 400, r.status, "a limit that is not a number: %s", r.body)
	r = h.adminCall(t, "GET", "/admin/v1/segments/sneaker-fans/members?limit=0", "")
	assert.Equal(t, 400, r.status)
	r = h.adminCall(t, "GET", "/admin/v1/segments/sneaker-fans/members?limit=5", "")
	assert.Equal(t, 200, r.status)

	for _, ref := range []string{"0123456789abcdef0123456789abcdef", "email:nobody@example.nl"} {
		r = h.adminCall(t, "POST", "/admin/v1/explain", `{"visitor":"`+ref+`","slots":["home-hero"]}`)
		assert.Equal(t, 404, r.status, "explain of an unknown profile says so: %s", r.body)
		assert.Contains(t, string(r.body), "no profile")
	}
}
