package edge

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEventsAccepted(t *testing.T) {
	h := newHarness(t, nil)
	r := call(t, h.public, "POST", "/v1/events", `{"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers")+`]}`, nil)
	require.Equal(t, 202, r.status, string(r.body))
	assert.EqualValues(t, 3, r.json(t)["accepted"])
	require.NotNil(t, r.cookie)
	d := h.decide(t, string(r.cookie.Value()), `{"slots":["home-hero"]}`)
	assert.Equal(t, "hero-sneakers", blockID(t, d, "home-hero"))
}

func TestEventsRejectedAsAWhole(t *testing.T) {
	h := newHarness(t, nil)
	first := call(t, h.public, "POST", "/v1/events", `{"events":[`+pageViews("/a")+`]}`, nil)
	v := string(first.cookie.Value())
	tests := []struct{ name, body string }{
		{"one bad event in a batch", `{"events":[` + pageViews("/demo/c/sneakers", "/demo/c/sneakers") + `,{"type":"page_view"}]}`},
		{"unknown type", `{"events":[{"type":"nope"}]}`},
		{"no events", `{}`},
		{"wrong type", `{"events":[{"type":"cart_add","sku":42}]}`},
		{"truncated", `{"events":[{"type":"page_view","url":"/a"`},
		{"deep nesting", `{"events":[` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `]}`},
		{"huge string", `{"events":[{"type":"page_view","url":"/` + strings.Repeat("x", 100_000) + `"}]}`},
		{"forged visitor in body", `{"visitor":"` + NewID() + `.AAAAAAAAAAAAAAAAAAAAAA","events":[` + pageViews("/a") + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, h.public, "POST", "/v1/events", tt.body, map[string]string{"Cookie": "etl=" + v})
			assert.Equal(t, 400, r.status, string(r.body))
			assert.Equal(t, ECodeInvalid, errorCode(t, r))
		})
	}
	d := h.decide(t, v, `{"slots":["home-hero"]}`)
	assert.NotEqual(t, "hero-sneakers", blockID(t, d, "home-hero"), "nothing of a rejected batch was stored")
}

func TestEventsForContactNeedAPIKey(t *testing.T) {
	h := newHarness(t, nil)
	body := `{"contact":{"email":" Anna@Example.NL "},"events":[{"type":"email_open","campaign":"sint-2026"}]}`
	r := call(t, h.public, "POST", "/v1/events", body, nil)
	assert.Equal(t, 401, r.status)
	r = call(t, h.public, "POST", "/v1/events", body, map[string]string{"X-Api-Key": "wrong"})
	assert.Equal(t, 401, r.status)
	r = call(t, h.public, "POST", "/v1/events", body, map[string]string{"Authorization": "Bearer " + testAPIKey})
	require.Equal(t, 202, r.status, string(r.body))
	assert.Nil(t, r.cookie, "a contact event sets no visitor cookie")

	exp := h.adminCall(t, "GET", "/admin/v1/profiles/email:anna@example.nl", "")
	require.Equal(t, 200, exp.status, string(exp.body))
	assert.Contains(t, string(exp.body), "sint-2026")
}

func TestResetStartsNewVisitor(t *testing.T) {
	h := newHarness(t, nil)
	first := h.decide(t, "", `{"slots":["home-hero"]}`)
	r := call(t, h.public, "POST", "/v1/reset", "", map[string]string{"Cookie": "etl=" + string(first.cookie.Value())})
	require.Equal(t, 200, r.status)
	require.NotNil(t, r.cookie)
	assert.NotEqual(t, string(first.cookie.Value()), string(r.cookie.Value()))
	assert.NotContains(t, string(r.body), "visitor", "the new value reaches no page JavaScript")
}

// TestIdentifyMovesCookieToContact: a proven identify (an identity token
// from the shop backend) merges devices and moves the cookie.
func TestIdentifyMovesCookieToContact(t *testing.T) {
	h := newHarness(t, nil)
	// Device A browses sneakers, then identifies.
	a := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers", "/demo/c/sneakers")+`]}`)
	a = h.decide(t, string(a.cookie.Value()), `{"slots":["home-hero"],"events":[{"type":"identify","email":"sam@example.nl","token":"`+token(t, "email:sam@example.nl")+`"}]}`)
	require.Equal(t, 200, a.status, string(a.body))
	// Device B views one more sneaker page and identifies as the same contact.
	b := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/c/sneakers")+`]}`)
	bOld := string(b.cookie.Value())
	b = h.decide(t, bOld, `{"slots":["home-hero"],"events":[{"type":"identify","email":"Sam@Example.nl","token":"`+token(t, "email:sam@example.nl")+`"}]}`)
	require.Equal(t, 200, b.status, string(b.body))
	assert.NotEqual(t, bOld, string(b.cookie.Value()), "after the merge the cookie points at the surviving profile")
	assert.Equal(t, string(a.cookie.Value()), string(b.cookie.Value()))
	assert.Equal(t, "hero-sneakers", blockID(t, b, "home-hero"), "2 + 1 sneaker views, one profile")
}

// A rejected batch says which event was bad, in a form a client can act on:
// "path" and the event's index "event" beside the message.
func TestRejectedBatchNamesTheEvent(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name, route, body, path string
		event                   any
	}{
		{"events", "/v1/events", `{"events":[` + pageViews("/a", "/b") + `,{"type":"cart_add","sku":42},` + pageViews("/c") + `]}`, "events[2].sku", 2.0},
		{"decide", "/v1/decide", `{"slots":["home-hero"],"events":[{"type":"page_view","url":"/a","colour":"red"}]}`, "events[0].colour", 0.0},
		{"unknown season", "/v1/events", `{"events":[` + pageViews("/a") + `,{"type":"page_view","url":"/a","season":"easter"}]}`, "events[1].season", 1.0},
		{"the batch as a whole", "/v1/events", `{"events":[` + pageViews(slices.Repeat([]string{"/a"}, 101)...) + `]}`, "events", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, h.public, "POST", tc.route, tc.body, nil)
			require.Equal(t, 400, r.status, string(r.body))
			e, ok := r.json(t)["error"].(map[string]any)
			require.True(t, ok, string(r.body))
			assert.Equal(t, tc.path, e["path"])
			assert.Equal(t, tc.event, e["event"])
			assert.Contains(t, e["message"], tc.path)
		})
	}
}
