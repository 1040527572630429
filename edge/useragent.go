package edge

import (
	_ "embed"
	"encoding/json"
	"regexp"
	"strings"
	"sync"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/mssola/useragent"
)

// crawlersJSON is the pattern list of github.com/monperrus/crawler-user-agents
// (MIT, see crawlers.LICENSE), taken from its npm package because the Go
// module proxy does not serve that module. `make crawlers` refreshes it.
//
//go:embed crawlers.json
var crawlersJSON []byte

var (
	crawlerOnce sync.Once
	crawlerRE   *regexp.Regexp
)

// crawlerPattern compiles the crawler list into one alternation, once.
func crawlerPattern() *regexp.Regexp {
	crawlerOnce.Do(func() {
		var pats []string
		if err := json.Unmarshal(crawlersJSON, &pats); err != nil {
			panic("edge: crawlers.json: " + err.Error())
		}
		var b strings.Builder
		for i, p := range pats {
			if _, err := regexp.Compile(p); err != nil {
				continue // a pattern RE2 cannot take; the others still hold
			}
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString("(?:" + p + ")")
		}
		crawlerRE = regexp.MustCompile(b.String())
	})
	return crawlerRE
}

// agent is what etalage takes from a User-Agent header.
type agent struct {
	device, browser, os string
	bot                 bool
}

// agents classifies user agents, caching the result per header value in a
// bounded cache: real traffic repeats a few thousand values, and the crawler
// list is too long to run on every request.
type agents struct {
	cache *ristretto.Cache[string, *agent]
}

func newAgents() (*agents, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, *agent]{
		NumCounters: 100_000,
		MaxCost:     10_000,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &agents{cache: c}, nil
}

func (a *agents) close() { a.cache.Close() }

// classify returns the agent for a User-Agent value.
func (a *agents) classify(ua []byte) *agent {
	if g, ok := a.cache.Get(b2s(ua)); ok {
		return g
	}
	s := string(ua)
	g := classifyAgent(s)
	a.cache.Set(s, g, 1)
	return g
}

// classifyAgent does the work behind classify: mssola/useragent for device,
// browser and OS, the crawler list and a headless check for bots. An empty
// user agent is a bot: no browser sends none.
func classifyAgent(s string) *agent {
	g := &agent{device: "desktop", browser: "other", os: "other"}
	if strings.TrimSpace(s) == "" {
		g.bot, g.device = true, "bot"
		return g
	}
	ua := useragent.New(s)
	lower := strings.ToLower(s)
	g.bot = ua.Bot() || strings.Contains(lower, "headless") || crawlerPattern().MatchString(s)
	switch name, _ := ua.Browser(); name {
	case "Chrome", "Chromium", "Headless Chrome":
		g.browser = "chrome"
	case "Firefox":
		g.browser = "firefox"
	case "Safari":
		g.browser = "safari"
	case "Edge":
		g.browser = "edge"
	case "Opera":
		g.browser = "opera"
	}
	osName := ua.OSInfo().Name
	platform := ua.Platform()
	switch {
	case platform == "iPad" || platform == "iPhone" || platform == "iPod":
		// mssola names iPadOS "OS" ("CPU OS 17_5 like Mac OS X").
		g.os = "ios"
	case strings.Contains(osName, "Android"):
		g.os = "android"
	case strings.Contains(osName, "iPhone"), strings.Contains(osName, "iPad"), strings.Contains(osName, "iOS"):
		g.os = "ios"
	case strings.Contains(osName, "Windows"):
		g.os = "windows"
	case strings.Contains(osName, "Mac OS"):
		g.os = "macos"
	case strings.Contains(osName, "Linux"):
		g.os = "linux"
	}
	switch {
	case g.bot:
		g.device = "bot"
	case strings.Contains(s, "iPad") || strings.Contains(lower, "tablet") ||
		(g.os == "android" && !strings.Contains(s, "Mobile")):
		g.device = "tablet"
	case ua.Mobile():
		g.device = "mobile"
	}
	return g
}
