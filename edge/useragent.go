package edge

import (
	_ "embed"
	"encoding/json"
	"hash/maphash"
	"regexp"
	"regexp/syntax"
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
	crawlers    *crawlerMatcher
)

// crawlerList parses the crawler list into a matcher, once.
func crawlerList() *crawlerMatcher {
	crawlerOnce.Do(func() {
		var pats []string
		if err := json.Unmarshal(crawlersJSON, &pats); err != nil {
			panic("edge: crawlers.json: " + err.Error())
		}
		crawlers = newCrawlerMatcher(pats)
	})
	return crawlers
}

// crawlerMatcher tells whether a user agent matches any pattern of the
// crawler list. As one alternation of its 1,500 patterns, Go's regexp took
// over a millisecond per new user agent (a cost anyone can make us pay by
// sending made-up values). Nearly all patterns are plain text: those are
// found through an index of their first three bytes, one map lookup per
// position of the user agent; the few real expressions run one by one,
// each small enough for regexp's fast matchers.
type crawlerMatcher struct {
	lits  map[[3]byte][]string // the literal patterns by their first three bytes
	short []string             // literal patterns under three bytes
	res   []*regexp.Regexp
}

func newCrawlerMatcher(pats []string) *crawlerMatcher {
	m := &crawlerMatcher{lits: map[[3]byte][]string{}}
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			continue // a pattern RE2 cannot take; the others still hold
		}
		if lit, ok := literal(p); ok {
			if len(lit) < 3 {
				m.short = append(m.short, lit)
			} else {
				k := [3]byte{lit[0], lit[1], lit[2]}
				m.lits[k] = append(m.lits[k], lit)
			}
			continue
		}
		m.res = append(m.res, re)
	}
	return m
}

// literal returns the text a pattern matches when it matches exactly one
// text, case-sensitively.
func literal(p string) (string, bool) {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 || len(re.Rune) == 0 {
		return "", false
	}
	return string(re.Rune), true
}

func (m *crawlerMatcher) match(s string) bool {
	for i := 0; i+3 <= len(s); i++ {
		for _, lit := range m.lits[[3]byte{s[i], s[i+1], s[i+2]}] {
			if strings.HasPrefix(s[i:], lit) {
				return true
			}
		}
	}
	for _, lit := range m.short {
		if strings.Contains(s, lit) {
			return true
		}
	}
	for _, re := range m.res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
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

func newAgents() *agents { return newAgentTable(agentSlots) }

func newAgentTable(slots int) *agents {
	return &agents{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cachedAgent], slots)}
}

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
	g.bot = ua.Bot() || strings.Contains(lower, "headless") || crawlerList().match(s)
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
