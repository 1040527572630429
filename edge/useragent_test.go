package edge

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassifyAgent(t *testing.T) {
	tests := []struct {
		name, ua        string
		device, browser string
		os              string
		bot             bool
	}{
		{"desktop chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "desktop", "chrome", "windows", false},
		{"iphone safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "mobile", "safari", "ios", false},
		{"android phone", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "mobile", "chrome", "android", false},
		{"android tablet", "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "tablet", "chrome", "android", false},
		{"ipad", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "tablet", "safari", "ios", false},
		{"mac firefox", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0", "desktop", "firefox", "macos", false},
		{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", "other", "other", true},
		{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot", "other", "other", true},
		{"headless chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "bot", "chrome", "linux", true},
		{"curl", "curl/8.5.0", "bot", "other", "other", true},
		{"empty", "", "bot", "other", "other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := classifyAgent(tt.ua)
			assert.Equal(t, tt.bot, g.bot, "bot")
			assert.Equal(t, tt.device, g.device, "device")
			if !tt.bot || tt.browser != "other" {
				assert.Equal(t, tt.browser, g.browser, "browser")
			}
			if tt.os != "other" {
				assert.Equal(t, tt.os, g.os, "os")
			}
		})
	}
}

func BenchmarkClassifyCached(b *testing.B) {
	a := newAgents()
	ua := []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	a.classify(ua)
	b.ReportAllocs()
	for b.Loop() {
		a.classify(ua)
	}
}

// TestClassifyCachedAgreesUnderChurn: many more distinct values than the
// table has slots, asked from several goroutines at once, each classified
// as classifyAgent would; a value too long to keep is still classified.
func TestClassifyCachedAgreesUnderChurn(t *testing.T) {
	a := newAgentTable(16)
	bases := []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1 v",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) v",
		"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36 v",
	}
	var uas []string
	for i := range 3 * len(a.slots) {
		uas = append(uas, bases[i%len(bases)]+strconv.Itoa(i))
	}
	uas = append(uas, strings.Repeat("x", maxCachedAgent)+" Googlebot/2.1")
	want := make([]agent, len(uas))
	for i, ua := range uas {
		want[i] = *classifyAgent(ua)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for round := range 2 {
				for i := w; i < len(uas); i += 2 {
					if got := a.classify([]byte(uas[i])); *got != want[i] {
						t.Errorf("round %d: %q classified %+v, want %+v", round, uas[i], *got, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	long := uas[len(uas)-1]
	assert.True(t, a.classify([]byte(long)).bot)
	for i := range a.slots {
		if e := a.slots[i].Load(); e != nil {
			assert.LessOrEqual(t, len(e.ua), maxCachedAgent)
		}
	}
}

// TestCrawlerMatcherAgreesWithTheList: the indexed matcher answers as the
// crawler list compiled into one alternation does (what it replaced), for
// user agents that carry a sample of the literal patterns, ones the
// expression patterns match, their case-changed forms and browsers.
func TestCrawlerMatcherAgreesWithTheList(t *testing.T) {
	var pats []string
	require.NoError(t, json.Unmarshal(crawlersJSON, &pats))
	var alts []string
	for _, p := range pats {
		if _, err := regexp.Compile(p); err == nil {
			alts = append(alts, "(?:"+p+")")
		}
	}
	full := regexp.MustCompile(strings.Join(alts, "|"))
	m := crawlerList()
	assert.Greater(t, len(m.lits), 500, "most patterns are literal")
	assert.Less(t, len(m.res), 100)

	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0",
		"AdsBot-Google (+http://www.google.com/adsbot.html)", "AdsBot-Google-Mobile", "Wget/1.21.4", "wget", "Seekbot/1.0",
		"SISTRIX Crawler", "AhrefsSiteAudit/6.1", "SemrushBot/7~bl", "SEMrushBot", "Pingdom.com_bot_version_1.4", "curl/8.5.0",
		"Apache-HttpClient/4.5.14 (Java/17)", "HTTPie/3.2.2", "BlogTraffic/1.2 Feed-Fetcher", "a Spider from spider.com",
		"x GoogleAssociationService", "SSL Labs", "Go-http-client/1.1", "facebookexternalhit/1.1", "", "ab", "abc",
	}
	for i, p := range pats {
		if lit, ok := literal(p); ok && i%40 == 0 {
			uas = append(uas, "Mozilla/5.0 (compatible; "+lit+"/2.1; +https://example.com)", strings.ToLower(lit)+" x", strings.ToUpper(lit))
		}
	}
	matched := 0
	for _, ua := range uas {
		want := full.MatchString(ua)
		assert.Equal(t, want, m.match(ua), "%q", ua)
		if want {
			matched++
		}
	}
	assert.Greater(t, matched, len(uas)/3, "the sample reaches the list")
	assert.Less(t, matched, len(uas), "and browsers are not crawlers")
}

// BenchmarkClassifyNew: a user agent seen for the first time (nothing
// cached): what a flood of made-up values costs per request.
func BenchmarkClassifyNew(b *testing.B) {
	crawlerList()
	i := 0
	for b.Loop() {
		i++
		classifyAgent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1 v" + strconv.Itoa(i))
	}
}
