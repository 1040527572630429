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
