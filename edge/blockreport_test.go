package edge

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp/fasthttputil"
)

type blockReportJSON struct {
	From, To, Timezone string
	Days               []struct {
		Day    string
		Blocks []struct {
			ID       string
			Slot     string
			Served   int64
			Visitors int64
			Clicks   int64
			CTR      *float64
		}
	}
}

func (h *harness) blockReport(tb testing.TB, query string) blockReportJSON {
	tb.Helper()
	r := h.adminCall(tb, "GET", "/admin/v1/report"+query, "")
	require.Equal(tb, 200, r.status, string(r.body))
	var rep blockReportJSON
	require.NoError(tb, json.Unmarshal(r.body, &rep))
	return rep
}

// TestBlockReport: served blocks, their distinct visitors and the clicks
// on them, per day; bots, prefetches, visitors without consent and clicks
// on unknown blocks count nothing.
func TestBlockReport(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReportFlush = time.Hour })
	const slots = `{"slots":["home-hero","banner-top","nowhere"]}`
	// Three visitors: one decides three times, and clicks the hero twice.
	first := h.decide(t, "", slots)
	require.Equal(t, 200, first.status)
	v := string(first.cookie.Value())
	h.decide(t, v, slots)
	h.decide(t, v, `{"slots":["home-hero"],"events":[{"type":"click","target":"block:hero-default"}]}`)
	r := call(t, h.public, "POST", "/v1/events", `{"events":[{"type":"click","target":"block:hero-default"},{"type":"click","target":"block:no-such-block"},{"type":"click","target":"nav"}]}`, map[string]string{"Cookie": "etl=" + v})
	require.Equal(t, 202, r.status, string(r.body))
	h.decide(t, "", slots)
	h.decide(t, "", `{"slots":["home-hero"]}`)
	// Not counted: a bot, a prefetch, a bot's click.
	call(t, h.public, "POST", "/v1/decide", slots, map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"})
	call(t, h.public, "POST", "/v1/decide", slots, map[string]string{"Sec-Purpose": "prefetch"})
	call(t, h.public, "POST", "/v1/events", `{"events":[{"type":"click","target":"block:hero-default"}]}`, map[string]string{"User-Agent": "Googlebot/2.1"})

	before := h.blockReport(t, "?from=2026-11-24&to=2026-11-24")
	require.Len(t, before.Days, 1)
	assert.Empty(t, before.Days[0].Blocks, "nothing is in the store before a flush")
	require.NoError(t, h.srv.blocks.flush(t.Context(), h.srv.profiles))

	rep := h.blockReport(t, "?from=2026-11-23&to=2026-11-25")
	assert.Equal(t, "2026-11-23", rep.From)
	assert.Equal(t, "2026-11-25", rep.To)
	assert.Equal(t, "Europe/Amsterdam", rep.Timezone)
	require.Len(t, rep.Days, 3)
	assert.Empty(t, rep.Days[0].Blocks)
	assert.Empty(t, rep.Days[2].Blocks)
	day := rep.Days[1]
	assert.Equal(t, "2026-11-24", day.Day)
	require.Len(t, day.Blocks, 2, "%+v", day.Blocks)
	banner, hero := day.Blocks[0], day.Blocks[1]
	assert.Equal(t, "banner-default", banner.ID)
	assert.Equal(t, "banner-top", banner.Slot)
	assert.Equal(t, int64(3), banner.Served)
	assert.Equal(t, int64(2), banner.Visitors)
	assert.Zero(t, banner.Clicks)
	assert.Equal(t, "hero-default", hero.ID)
	assert.Equal(t, "home-hero", hero.Slot)
	assert.Equal(t, int64(5), hero.Served)
	assert.Equal(t, int64(3), hero.Visitors)
	assert.Equal(t, int64(2), hero.Clicks, "the click in a decide and the one in /v1/events; not the bot's, not other targets")
	require.NotNil(t, hero.CTR)
	assert.InDelta(t, 0.4, *hero.CTR, 1e-9)

	// A second flush adds to the first; the returning visitor is not a
	// new one.
	h.decide(t, v, slots)
	require.NoError(t, h.srv.blocks.flush(t.Context(), h.srv.profiles))
	hero = h.blockReport(t, "?from=2026-11-24&to=2026-11-24").Days[0].Blocks[1]
	assert.Equal(t, int64(6), hero.Served)
	assert.Equal(t, int64(3), hero.Visitors)

	// Without from and to: the week up to today.
	week := h.blockReport(t, "")
	assert.Equal(t, "2026-11-18", week.From)
	assert.Equal(t, "2026-11-24", week.To)
	assert.Len(t, week.Days, 7)
}

func TestBlockReportConsentRequired(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ConsentNeeded = true; c.ReportFlush = time.Hour })
	r := h.decide(t, "", `{"slots":["home-hero"]}`)
	require.Equal(t, 200, r.status)
	assert.Nil(t, r.cookie)
	r = h.decide(t, "", `{"slots":["home-hero"],"events":[{"type":"consent","purposes":{"profiling":true}}]}`)
	require.NotNil(t, r.cookie)
	require.NoError(t, h.srv.blocks.flush(t.Context(), h.srv.profiles))
	blocks := h.blockReport(t, "?from=2026-11-24&to=2026-11-24").Days[0].Blocks
	require.Len(t, blocks, 1)
	assert.Equal(t, int64(1), blocks[0].Served, "only the visitor who consented is counted")
}

// TestBlockReportShutdownFlushes: counts not yet flushed reach the store
// when the server shuts down.
func TestBlockReportShutdownFlushes(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv, err := New(t.Context(), st, Config{Secrets: [][]byte{[]byte("test-secret-0123456789")}, AdminToken: testAdminToken,
		Now: func() time.Time { return testNow }, ReportFlush: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	pub, adm := fasthttputil.NewInmemoryListener(), fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pub, adm) }()
	ctx := handlerRequest("GET", "/v1/decide?slots=home-hero", "", "")
	srv.servePublic(ctx)
	require.Equal(t, 200, ctx.Response.StatusCode())
	require.NoError(t, srv.Shutdown(t.Context()))
	<-done
	rows, err := srv.profiles.BlockCounts(t.Context(), []string{"2026-11-24"})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, int64(1), rows[0].Served)
}

func TestBlockReportRejectsBadRanges(t *testing.T) {
	h := newHarness(t, nil)
	cases := map[string]string{
		"?from=2026-11-31&to=2026-12-01": `from: "2026-11-31" is not a date like 2026-11-24`,
		"?from=24-11-2026":               `from: "24-11-2026" is not a date like 2026-11-24`,
		"?from=2026-11-24&to=2026-11-2":  `to: "2026-11-2" is not a date like 2026-11-24`,
		"?from=2026-11-24&to=2026-11-23": "to (2026-11-23) is before from (2026-11-24)",
		"?from=2026-01-01&to=2026-04-02": "from and to span 92 days; a report covers at most 92",
		"?from=2026-01-01&to=2026-04-03": "from and to span 93 days; a report covers at most 92",
		"?from=2026-11-24&block=hero":    `unknown parameter "block"; use from and to`,
		"?from=2026-11-24T00:00:00Z":     `from: "2026-11-24T00:00:00Z" is not a date like 2026-11-24`,
		"?to=2026-11-24&from=":           `from: "" is not a date like 2026-11-24`,
	}
	for q, msg := range cases {
		t.Run(q, func(t *testing.T) {
			r := h.adminCall(t, "GET", "/admin/v1/report"+q, "")
			if msg == "from and to span 92 days; a report covers at most 92" {
				assert.Equal(t, 200, r.status, "92 days is the most, and allowed")
				return
			}
			require.Equal(t, 400, r.status, string(r.body))
			assert.Equal(t, map[string]any{"error": map[string]any{"code": "invalid", "message": msg}}, r.json(t))
		})
	}
	r := h.adminCall(t, "POST", "/admin/v1/report", "")
	assert.Equal(t, 405, r.status)
	r = call(t, h.admin, "GET", "/admin/v1/report", "", nil)
	assert.Equal(t, 401, r.status, "the admin token is needed")
}

// TestBlockReportCountsRealDays: a demo visitor pretending to come back
// tomorrow is counted today, on the day the block was really served.
func TestBlockReportCountsRealDays(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DemoPretend = true; c.ReportFlush = time.Hour })
	b := &pretendBrowser{h: h}
	b.decide(t, pageViews("/demo/"))
	require.Equal(t, 200, b.pretendTo(t, `{"at":"tomorrow"}`).status)
	b.decide(t, pageViews("/demo/"))
	require.NoError(t, h.srv.blocks.flush(t.Context(), h.srv.profiles))
	rep := h.blockReport(t, "?from=2026-11-24&to=2026-11-25")
	assert.Empty(t, rep.Days[1].Blocks, "nothing on the pretended day")
	var served int64
	for _, bl := range rep.Days[0].Blocks {
		served += bl.Served
	}
	assert.Positive(t, served)
}

// TestShutdownBeforeServe: a Shutdown that comes before Serve has begun
// serving still ends it (a test that shut down right after starting hung
// for 12 minutes on a busy machine).
func TestShutdownBeforeServe(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv, err := New(t.Context(), st, Config{Secrets: [][]byte{[]byte("test-secret-0123456789")}, AdminToken: testAdminToken,
		Now: func() time.Time { return testNow }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, srv.Shutdown(t.Context()))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(fasthttputil.NewInmemoryListener(), fasthttputil.NewInmemoryListener()) }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still serving 10 s after Shutdown")
	}
}
