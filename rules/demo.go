package rules

import (
	"bytes"
	_ "embed"
	"strconv"
)

//go:embed demo.yaml
var demo []byte

// Demo returns the demo definitions: a Dutch shoe and toy shop with a
// Sinterklaas season, used when no document was applied.
func Demo() []byte { return append([]byte(nil), demo...) }

// DemoWithoutExperiments returns Demo() without its experiments section,
// for a document that brings experiments of its own (tests, load tests):
// two experiments on the home hero for the same visitors would not
// validate. The blocks section stays last, so blocks may be appended.
func DemoWithoutExperiments() []byte {
	d := Demo()
	start := bytes.Index(d, []byte("\nexperiments:\n"))
	if start < 0 {
		return d
	}
	end := start + len("\nexperiments:\n")
	// The section ends at the next top-level key.
	for end < len(d) && (d[end] == ' ' || d[end] == '#' || d[end] == '\n') {
		if i := bytes.IndexByte(d[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(d)
		}
	}
	return append(d[:start+1], d[end:]...)
}

// DemoHeroTest returns DemoWithoutExperiments() with a 50/50 experiment on
// the home hero that every visitor may enter: hero-test, variants control
// (the normal decision) and bold (block hero-bold), goal a purchase within
// 14 days. Tests and load tests append a holdout when they want one.
func DemoHeroTest() []byte {
	return append(DemoWithoutExperiments(), `
  - {id: hero-bold, slot: home-hero, priority: -100, html: "<h1>Alles voor je volgende stap</h1>"}
experiments:
  - id: hero-test
    slot: home-hero
    variants:
      - {id: control, weight: 1}
      - {id: bold, weight: 1, block: hero-bold}
    goal: {event: purchase, within: 14d}
`...)
}

// DemoWebhooks returns the demo's webhooks section, to append to Demo() on
// a node that can sign webhooks: cart abandoners (30 minutes) and
// Sinterklaas gift buyers go to url (in demo mode, the demo receiver on
// the admin listener).
func DemoWebhooks(url string) []byte {
	return []byte(`
# Cart abandoners (30 minutes) and Sinterklaas gift buyers go to the
# mailer; in demo mode that is the demo receiver on the admin listener.
webhooks:
  - id: mailer
    url: ` + strconv.Quote(url) + `
    segments: [cart-abandoners, sint-gift-buyers]
    fields: [first_name, language]
`)
}
