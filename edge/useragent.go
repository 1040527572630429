package edge

import (
	_ "embed"
	"encoding/json"
	"hash/maphash"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

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

// agents classifies user agents, caching the result per header value:
// real traffic repeats a few thousand values, and the crawler list is too
// long to run on every request.
//
// The cache is a direct-mapped table of agentSlots entries (fewer in
// tests), each replaced
// by the last value that hashed to it: a hit is one hash and one string
// compare, without the admission and eviction bookkeeping a general cache
// does on every read (ristretto's Get was 9% of a warm decide). A flood of
// made-up values costs what it cost before (a classification each) and
// cannot grow the table: values longer than maxCachedAgent are classified
// without being kept, so the table holds at most agentSlots×maxCachedAgent
// bytes of keys.
type agents struct {
	seed  maphash.Seed
	slots []atomic.Pointer[cachedAgent] // a power of two long
}

const (
	agentSlots     = 1 << 13
	maxCachedAgent = 512
)

type cachedAgent struct {
	ua string
	agent
}

func newAgents() (*agents, error) {
	return newAgentTable(agentSlots), nil
}

func newAgentTable(slots int) *agents {
	return &agents{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cachedAgent], slots)}
}

func (a *agents) close() {}

// classify returns the agent for a User-Agent value.
func (a *agents) classify(ua []byte) *agent {
	slot := &a.slots[maphash.Bytes(a.seed, ua)&uint64(len(a.slots)-1)]
	if e := slot.Load(); e != nil && e.ua == b2s(ua) {
		return &e.agent
	}
	s := string(ua)
	g := classifyAgent(s)
	if len(s) <= maxCachedAgent {
		slot.Store(&cachedAgent{ua: s, agent: *g})
	}
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
