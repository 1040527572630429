package rules

import (
	_ "embed"
	"strconv"
)

//go:embed demo.yaml
var demo []byte

// Demo returns the demo definitions: a Dutch shoe and toy shop with a
// Sinterklaas season, used when no document was applied.
func Demo() []byte { return append([]byte(nil), demo...) }

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
