package profile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"
)

func decode(t testing.TB, body string, o DecodeOptions) ([]Event, error) {
	t.Helper()
	v, err := fastjson.Parse(body)
	require.NoError(t, err)
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	}
	return DecodeEvents(v, o)
}

func TestDecodeEventsValid(t *testing.T) {
	_, err := decode(t, `[
		{"type":"page_view","url":"https://shop.nl/sneakers/air?utm=x#top","category":"sneakers"},
		{"type":"click","target":"hero","url":"/"},
		{"type":"cart_add","sku":"42","category":"toys","price":"12" },
		{"type":"cart_remove","sku":"a"},
		{"type":"purchase","order_id":"o1","items":[{"sku":"a","price":10,"quantity":2,"gift":true}]},
		{"type":"email_open","campaign":"c"},
		{"type":"email_click","campaign":"c","url":"/x?y=1"},
		{"type":"form_submit","form":"newsletter","fields":{"shoe_size":"45","tags":["a","b"]}},
		{"type":"identify","email":"  Sam@Example.NL ","fields":{"birthday":"1990-02-03"}},
		{"type":"interest","name":"running"},
		{"type":"consent","purposes":{"profiling":true,"email":false}},
		{"type":"page_view","url":"/", "season":"sinterklaas"}
	]`, DecodeOptions{Fields: map[string]Kind{"shoe_size": KindNumber}, Seasons: []Season{sinterklaas()}})
	require.Error(t, err, "price as a string must be rejected")
	assert.Equal(t, "events[2].price: must be a number from 0 to 1000000000", err.Error())

	evs, err := decode(t, `[
		{"type":"page_view","url":"https://shop.nl/sneakers/air?utm=x#top","category":"sneakers"},
		{"type":"cart_add","sku":"42","category":"toys","price":12.5},
		{"type":"cart_remove","sku":"a"},
		{"type":"form_submit","form":"newsletter","fields":{"shoe_size":"45","tags":["a","b"]}},
		{"type":"identify","email":"  Sam@Example.NL ","fields":{"birthday":"1990-02-03"}},
		{"type":"interest","name":"running"},
		{"type":"consent","purposes":{"profiling":true}},
		{"type":"page_view","url":"/a?b", "season":"sinterklaas"}
	]`, DecodeOptions{Fields: map[string]Kind{"shoe_size": KindNumber}, Seasons: []Season{sinterklaas()}})
	require.NoError(t, err)
	require.Len(t, evs, 8)
	assert.Equal(t, Event{Type: PageView, URL: "/sneakers/air", Category: "sneakers"}, evs[0])
	assert.Equal(t, Event{Type: CartAdd, SKU: "42", Category: "toys", Price: 12.5, Quantity: 1}, evs[1])
	assert.Equal(t, 0, evs[2].Quantity, "cart_remove without quantity removes the line")
	assert.Equal(t, Value{Kind: KindNumber, Num: 45}, evs[3].Fields["shoe_size"], "declared fields are coerced")
	assert.Equal(t, Value{Kind: KindList, List: []string{"a", "b"}}, evs[3].Fields["tags"])
	assert.Equal(t, "sam@example.nl", evs[4].Email)
	assert.Equal(t, KindDate, evs[4].Fields["birthday"].Kind, "birthday is a standard date field")
	assert.True(t, evs[5].On, "interest defaults to on")
	assert.Equal(t, map[string]bool{"profiling": true}, evs[6].Purposes)
	assert.Equal(t, "sinterklaas", evs[7].Season)
	assert.Equal(t, "/a", evs[7].URL)
}

func TestDecodeEventsRejects(t *testing.T) {
	declared := DecodeOptions{Fields: map[string]Kind{"shoe_size": KindNumber}}
	for _, tc := range []struct {
		name, body, want string
		opts             DecodeOptions
	}{
		{"not a list", `{"type":"page_view"}`, "events: must be a list of events", DecodeOptions{}},
		{"not an object", `[1]`, "events[0]: an event must be an object", DecodeOptions{}},
		{"no type", `[{"url":"/"}]`, "events[0].type: required", DecodeOptions{}},
		{"unknown type", `[{"type":"page_view","url":"/"},{"type":"teleport"}]`, `events[1].type: unknown event type "teleport"`, DecodeOptions{}},
		{"missing url", `[{"type":"page_view"}]`, "events[0].url: required", DecodeOptions{}},
		{"relative url", `[{"type":"page_view","url":"sneakers"}]`, "events[0].url: must be a path", DecodeOptions{}},
		{"javascript url", `[{"type":"page_view","url":"javascript:alert(1)"}]`, "events[0].url: must be a path", DecodeOptions{}},
		{"unknown property", `[{"type":"cart_add","sku":"a","colour":"red"}]`, "events[0].colour: not a property of cart_add", DecodeOptions{}},
		{"sku object", `[{"type":"cart_add","sku":{}}]`, "events[0].sku: must be a string", DecodeOptions{}},
		{"negative price", `[{"type":"cart_add","sku":"a","price":-1}]`, "events[0].price: must be a number", DecodeOptions{}},
		{"zero quantity", `[{"type":"cart_add","sku":"a","quantity":0}]`, "events[0].quantity: must be a whole number", DecodeOptions{}},
		{"no items", `[{"type":"purchase","order_id":"o"}]`, "events[0].items: required", DecodeOptions{}},
		{"empty items", `[{"type":"purchase","order_id":"o","items":[]}]`, "events[0].items: must hold 1 to", DecodeOptions{}},
		{"item without sku", `[{"type":"purchase","order_id":"o","items":[{"price":1}]}]`, "events[0].items[0].sku: required", DecodeOptions{}},
		{"no order id", `[{"type":"purchase","items":[{"sku":"a"}]}]`, "events[0].order_id: required", DecodeOptions{}},
		{"identify nothing", `[{"type":"identify"}]`, "events[0].email: identify needs an email or a customer_id", DecodeOptions{}},
		{"bad email", `[{"type":"identify","email":"nope"}]`, "events[0].email: not an e-mail address", DecodeOptions{}},
		{"token not a string", `[{"type":"identify","email":"a@b.nl","token":42}]`, "events[0].token: must be an identity token", DecodeOptions{}},
		{"token too long", `[{"type":"identify","email":"a@b.nl","token":"` + strings.Repeat("a", MaxTokenLen+1) + `"}]`, "events[0].token: must be an identity token", DecodeOptions{}},
		{"token on another event", `[{"type":"page_view","url":"/","token":"x"}]`, "events[0].token", DecodeOptions{}},
		{"email as field", `[{"type":"identify","customer_id":"1","fields":{"email":"a@b.c"}}]`, "events[0].fields.email: set through identify", DecodeOptions{}},
		{"declared coercion", `[{"type":"form_submit","form":"f","fields":{"shoe_size":"big"}}]`, "events[0].fields.shoe_size: must be a number", declared},
		{"bad date", `[{"type":"identify","email":"a@b.nl","fields":{"birthday":"yesterday"}}]`, "events[0].fields.birthday: must be a date", DecodeOptions{}},
		{"bad field name", `[{"type":"form_submit","form":"f","fields":{"a b":1}}]`, "events[0].fields.a b: a field name", DecodeOptions{}},
		{"nested field", `[{"type":"form_submit","form":"f","fields":{"x":{"y":1}}}]`, "events[0].fields.x: must be a string, number, bool, list or null", DecodeOptions{}},
		{"consent not bool", `[{"type":"consent","purposes":{"profiling":"yes"}}]`, "events[0].purposes.profiling: must be true or false", DecodeOptions{}},
		{"consent empty", `[{"type":"consent","purposes":{}}]`, "events[0].purposes: must be an object", DecodeOptions{}},
		{"ts from browser", `[{"type":"page_view","url":"/","ts":"2020-01-01T00:00:00Z"}]`, "events[0].ts: only server-side callers with the API key may send ts", DecodeOptions{}},
		{"ts in future", `[{"type":"page_view","url":"/","ts":"2030-01-01T00:00:00Z"}]`, "events[0].ts: lies in the future", DecodeOptions{Trusted: true}},
		{"ts garbage", `[{"type":"page_view","url":"/","ts":"monday"}]`, "events[0].ts: must be an RFC 3339 time", DecodeOptions{Trusted: true}},
		{"too many", `[{"type":"interest","name":"a"},{"type":"interest","name":"b"}]`, "events: at most 1 events per request", DecodeOptions{MaxEvents: 1}},
		{"unknown season", `[{"type":"page_view","url":"/","season":"sinterklaas"},{"type":"page_view","url":"/","season":"easter"}]`, `events[1].season: unknown season "easter"; use sinterklaas`, DecodeOptions{Seasons: []Season{sinterklaas()}}},
		{"season without seasons", `[{"type":"cart_add","sku":"a","season":"sinterklaas"}]`, `events[0].season: unknown season "sinterklaas"; the definitions hold no seasons`, DecodeOptions{}},
		{"purchase value", `[{"type":"purchase","order_id":"o","value":12,"items":[{"sku":"a"}]}]`, "events[0].value: not a property of purchase", DecodeOptions{}},
		{"long sku", `[{"type":"cart_add","sku":"` + string(make([]byte, 0)) + `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]`, "events[0].sku: longer than 128 bytes", DecodeOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := decode(t, tc.body, tc.opts)
			require.Error(t, err)
			assert.Nil(t, evs, "a rejected batch yields no events")
			assert.True(t, errors.Is(err, ErrInvalid))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeTrustedTS(t *testing.T) {
	evs, err := decode(t, `[{"type":"page_view","url":"/","ts":"2026-01-02T03:04:05Z"},{"type":"page_view","url":"/","ts":1700000000}]`, DecodeOptions{Trusted: true})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix(), evs[0].TS)
	assert.Equal(t, int64(1700000000), evs[1].TS)
	assert.True(t, evs[0].Trusted)
}

// TestDecodeNeverProves: the decoder keeps an identify's token for edge to
// verify but never marks an identify proven, whoever the caller and
// whatever the JSON says.
func TestDecodeNeverProves(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		evs, err := decode(t, `[{"type":"identify","email":"a@b.nl","token":"h.p.s"}]`, DecodeOptions{Trusted: trusted})
		require.NoError(t, err)
		assert.False(t, evs[0].Proven)
		assert.Equal(t, "h.p.s", evs[0].Token)
		_, err = decode(t, `[{"type":"identify","email":"a@b.nl","proven":true}]`, DecodeOptions{Trusted: trusted})
		assert.ErrorIs(t, err, ErrInvalid, "proven is no property of the API")
	}
}

func TestContactIdent(t *testing.T) {
	for body, want := range map[string]string{
		`{"email":" Sam@Example.NL"}`: "email:sam@example.nl",
		`{"customer_id":42}`:          "customer:42",
		`{"customer_id":"c-1"}`:       "customer:c-1",
	} {
		got, err := ContactIdent(fastjson.MustParse(body))
		require.NoError(t, err, body)
		assert.Equal(t, want, got)
	}
	for body, want := range map[string]string{
		`[]`:                 "contact: must be an object",
		`{}`:                 "contact: needs an email or a customer_id",
		`{"email":"x"}`:      "contact.email: not an e-mail address",
		`{"phone":"0612"}`:   "contact.phone: not a property of a contact",
		`{"customer_id":{}}`: "contact.customer_id: must be a string",
	} {
		_, err := ContactIdent(fastjson.MustParse(body))
		require.Error(t, err, body)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), want)
	}
}

func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{
		`[{"type":"page_view","url":"/a"}]`,
		`[{"type":"purchase","order_id":"o","items":[{"sku":"a","price":1,"quantity":2,"gift":true}]}]`,
		`[{"type":"identify","email":"a@b.nl","fields":{"shoe_size":"45","birthday":"2000-01-01","tags":["x"]}}]`,
		`[{"type":"consent","purposes":{"profiling":false}},{"type":"interest","name":"x","on":false}]`,
		`[{"type":"page_view","url":"/","ts":"2026-01-01T00:00:00Z","season":"s"}]`,
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, trusted bool) {
		v, err := fastjson.Parse(body)
		if err != nil {
			return
		}
		evs, err := DecodeEvents(v, DecodeOptions{Trusted: trusted, Fields: map[string]Kind{"shoe_size": KindNumber, "birthday": KindDate}})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Whatever decodes must apply without panicking and stay in bounds.
		p := &Profile{ID: NewID()}
		for i := range evs {
			p.apply(&evs[i], 1_800_000_000, nil)
		}
		if len(p.Behaviour) > MaxCounters || len(p.Fields) > MaxFields {
			t.Fatalf("profile outgrew its bounds")
		}
		q, err := Decode(Encode(nil, p))
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if len(q.Behaviour) != len(p.Behaviour) {
			t.Fatalf("round trip lost counters")
		}
	})
}
