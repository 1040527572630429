package edge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOverview(t *testing.T) {
	h := newHarness(t, nil)
	populate(t, h, 30, 3)
	r := h.adminCall(t, "GET", "/admin/v1/overview", "")
	require.Equal(t, 200, r.status, string(r.body))
	m := r.json(t)
	sum := m["summary"].(map[string]any)
	assert.NotEmpty(t, sum["segments"])
	assert.NotEmpty(t, sum["slots"])
	seasons := sum["seasons"].([]any)
	require.NotEmpty(t, seasons)
	sint := seasons[0].(map[string]any)
	assert.Equal(t, "sinterklaas", sint["id"])
	assert.Equal(t, true, sint["collecting"], "24 November is inside the demo's collect window")
	sizes := m["sizes"].(map[string]any)
	assert.EqualValues(t, 10, sizes["sneaker-fans"].(map[string]any)["estimate"])
}

func TestPreviewRendersTheVisitorsHomepage(t *testing.T) {
	h := newHarness(t, nil)
	d := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
	v := string(d.cookie.Value())
	r := h.adminCall(t, "GET", "/admin/v1/preview/demo/?visitor="+v, "")
	require.Equal(t, 200, r.status, string(r.body))
	page := string(r.body)
	assert.Contains(t, page, "<!-- block hero-sneakers -->", "the hero as this visitor sees it")
	assert.Contains(t, page, "<!-- block picks-sneakers -->")
	assert.Contains(t, page, `/admin/v1/preview/demo/img/`, "data-only picks drawn as product cards with the preview's images")
	assert.NotContains(t, page, "<script", "no scripts in a preview")
	assert.Contains(t, r.headers["Content-Security-Policy"], "script-src 'none'")

	r = h.adminCall(t, "GET", "/admin/v1/preview/demo/", "")
	require.Equal(t, 200, r.status)
	assert.Contains(t, string(r.body), "<!-- block hero-default -->", "without a visitor: a new visitor's page")
	r = h.adminCall(t, "GET", "/admin/v1/preview/demo/demo.css", "")
	assert.Equal(t, 200, r.status)
	r = h.adminCall(t, "GET", "/admin/v1/preview/etc/passwd", "")
	assert.Equal(t, 404, r.status)
	r = h.adminCall(t, "GET", "/admin/v1/preview/demo/?visitor=email:nobody@example.nl", "")
	assert.Equal(t, 404, r.status)
}

func TestDemoMeSaysHowTheServiceSeesTheBrowser(t *testing.T) {
	h := newHarness(t, nil)
	me := call(t, h.public, "GET", "/demo/api/me", "", map[string]string{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"})
	require.Equal(t, 200, me.status, string(me.body))
	assert.Equal(t, true, me.json(t)["bot"], "headless Chromium is taken for a bot, and the demo says so")
	assert.Equal(t, false, me.json(t)["cookie"])

	d := h.decide(t, "", `{"slots":["home-hero"]}`)
	me = call(t, h.public, "GET", "/demo/api/me", "", map[string]string{"Cookie": "etl=" + string(d.cookie.Value())})
	assert.Equal(t, false, me.json(t)["bot"])
	assert.Equal(t, true, me.json(t)["cookie"])
	assert.NotEmpty(t, me.json(t)["words"], "the why panel in words")
}

func TestDemoPageViewsCarryCategory(t *testing.T) {
	h := newHarness(t, nil)
	// Three toy page views in November go to the Sinterklaas profile; the
	// demo's toy fans count them there too.
	d := h.decide(t, "", `{"slots":["home-hero"],"events":[{"type":"page_view","url":"/demo/c/toys","category":"toys"},{"type":"page_view","url":"/demo/p/board-game","category":"toys","sku":"board-game"},{"type":"page_view","url":"/demo/c/toys","category":"toys"}]}`)
	require.Equal(t, 200, d.status, string(d.body))
	segs := d.json(t)["segments"].([]any)
	assert.Contains(t, segs, "toy-fans")
	assert.Contains(t, segs, "sint-browsers")
}
