package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// attackDoc shows the visitor's personal fields in a templated block, so
// that any leak of a victim's profile into an attacker's decision shows.
const attackDoc = `blocks:
  - {id: hello, slot: home-hero, html: "<p>Hoi {{ .profile.first_name }} uit {{ .profile.city }}</p>"}
`

// The victim's personal data: none of it may ever reach the attacker.
var victimSecrets = []string{"Vera", "Zwolle", "0612345678", "victim-order-1"}

// TestAttackerCannotTakeOverProfiles replays the takeover against the real
// binary as a stranger with an HTTP client would: identify with a victim's
// e-mail, with a guessed customer id, with expired, foreign-subject and
// wrong-key tokens, and ?visitor= fixation. Nothing of the victim shows,
// and the victim's profile stays theirs.
func TestAttackerCannotTakeOverProfiles(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		attack(t, startNode(t, "embedded:"+t.TempDir(), "--demo", "true"))
	})
	t.Run("redis", func(t *testing.T) {
		attack(t, startNode(t, "redis://"+redistest.Server(t)+"/0", "--demo", "true"))
	})
}

func attack(t *testing.T, n *node) {
	code, m := adminDo(t, n, "PUT", "/admin/v1/definitions", attackDoc)
	require.Equal(t, 200, code, "%v", m)
	base := "http://" + n.public

	// The victim logs in on the shop; the shop backend proves it with the
	// API key and records an order.
	victim := newBrowser(t)
	victim.decide(t, n, sneakerView)
	vm := victim.decide(t, n, `{"type":"identify","email":"victim@example.nl","token":"`+identityToken(t, "email:victim@example.nl", time.Hour)+`"}`)
	require.Contains(t, vm["blocks"].(map[string]any)["home-hero"].(map[string]any)["html"], "Hoi")
	status, body, _ := victim.post(t, base+"/v1/events",
		`{"contact":{"email":"victim@example.nl"},"events":[{"type":"identify","email":"victim@example.nl","customer_id":1001,"fields":{"first_name":"Vera","city":"Zwolle","phone":"0612345678"}},{"type":"purchase","order_id":"victim-order-1","items":[{"sku":"shoe","price":99}]}]}`,
		"Authorization", "Bearer "+e2eAPIKey, "User-Agent", "python-requests/2.32.3")
	require.Equal(t, 202, status, "%v", body)
	require.EqualValues(t, 2, body["accepted"], "the backend's events are stored, whatever its HTTP client")
	victimCookie := victim.cookie(t, n)
	require.Contains(t, victim.hero(t, n), "Vera")

	expired := identityToken(t, "email:victim@example.nl", -time.Hour)
	foreign := identityToken(t, "email:mallory@example.nl", time.Hour)
	wrongKey, err := edge.SignIdentity([]byte("not-the-identity-key-0123456789ab"), "email:victim@example.nl", time.Now().Add(24*365*time.Hour))
	require.NoError(t, err)
	for name, ev := range map[string]string{
		"victim's e-mail":     `{"type":"identify","email":"Victim@Example.NL","fields":{"first_name":"Mallory"}}`,
		"guessed customer id": `{"type":"identify","customer_id":1001,"fields":{"first_name":"Mallory"}}`,
		"e-mail and id":       `{"type":"identify","email":"victim@example.nl","customer_id":"1001"}`,
		"expired token":       `{"type":"identify","email":"victim@example.nl","token":"` + expired + `"}`,
		"foreign subject":     `{"type":"identify","email":"victim@example.nl","token":"` + foreign + `"}`,
		"wrong key":           `{"type":"identify","email":"victim@example.nl","token":"` + wrongKey + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			att := newBrowser(t)
			att.decide(t, n, `{"type":"page_view","url":"/attacker"}`)
			own := att.cookie(t, n)
			m := att.decide(t, n, ev)
			raw, _ := json.Marshal(m)
			for _, s := range victimSecrets {
				assert.NotContains(t, string(raw), s, "decide shows nothing of the victim")
			}
			assert.Equal(t, own, att.cookie(t, n), "the cookie stays on the attacker's own profile")
			assert.NotEqual(t, victimCookie, att.cookie(t, n))
			me := att.get(t, base+"/demo/api/me")
			// (The address the attacker typed is their own claim, kept on
			// their own profile: no secret.)
			for _, s := range append(victimSecrets, victimCookie[:32]) {
				assert.NotContains(t, me, s, "/demo/api/me shows nothing of the victim")
			}
			// What the attacker can still do with their own cookie touches
			// only their own profile.
			att.decide(t, n, `{"type":"consent","purposes":{"profiling":false}},{"type":"form_submit","form":"x","fields":{"city":"Mordor"}}`)
			assertVictimIntact(t, n, victimCookie)
			assert.Contains(t, victim.hero(t, n), "Vera", "the victim still sees their own page")
		})
	}

	t.Run("?visitor= fixation", func(t *testing.T) {
		att := newBrowser(t)
		att.decide(t, n, "")
		planted := att.cookie(t, n)
		// The victim follows a link that names the attacker's visitor.
		dupe := newBrowser(t)
		req, err := http.NewRequest("GET", base+"/v1/decide?slots=home-hero&visitor="+planted, nil)
		require.NoError(t, err)
		req.Header.Set("User-Agent", chromeUA)
		resp, err := dupe.c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "a forwarded visitor never becomes a cookie")
		assert.Empty(t, dupe.cookie(t, n))
		status, _, hdr := dupe.post(t, base+"/v1/decide", `{"visitor":"`+planted+`","slots":["home-hero"]}`)
		assert.Equal(t, 200, status)
		assert.Empty(t, hdr.Values("Set-Cookie"))
		// The victim then logs in: their own profile, never the planted one.
		dupe.decide(t, n, `{"type":"identify","email":"victim@example.nl","token":"`+identityToken(t, "email:victim@example.nl", time.Hour)+`"}`)
		assert.Equal(t, victimCookie, dupe.cookie(t, n))
		assert.NotContains(t, att.hero(t, n), "Vera", "the attacker's planted profile learned nothing")
		assertVictimIntact(t, n, victimCookie)
	})

	t.Run("logs hold no secrets", func(t *testing.T) {
		// An unparsable request carrying credentials: fasthttp's error log
		// must not print it.
		c, err := net.Dial("tcp", n.public)
		require.NoError(t, err)
		io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e2eAPIKey+"\r\nCookie: etl="+victimCookie+"\r\nContent-Length: nope\r\n\r\n")
		io.ReadAll(c)
		c.Close()
		time.Sleep(100 * time.Millisecond)
		logs := n.logs.String()
		for _, s := range append(victimSecrets, "victim@example.nl", victimCookie, e2eAPIKey, e2eToken, e2eIdKey, "127.0.0.1:") {
			if s == "127.0.0.1:" {
				// The listeners' own addresses are logged at start; a
				// client's address never is.
				logs = strings.ReplaceAll(strings.ReplaceAll(logs, n.public, ""), n.admin, "")
			}
			assert.NotContains(t, logs, s)
		}
	})
}

// assertVictimIntact checks that both of the victim's identifiers still
// name the victim's profile and that it holds only what the victim gave.
func assertVictimIntact(t *testing.T, n *node, victimCookie string) {
	t.Helper()
	for _, ref := range []string{"email:victim@example.nl", "customer:1001"} {
		code, m := adminDo(t, n, "GET", "/admin/v1/profiles/"+ref, "")
		require.Equal(t, 200, code, "%v", m)
		assert.Equal(t, victimCookie[:32], m["id"], "%s still names the victim's profile", ref)
		raw, _ := json.Marshal(m)
		assert.Contains(t, string(raw), "victim-order-1", "the victim's orders are intact")
		assert.Contains(t, string(raw), "Vera")
		for _, s := range []string{"Mallory", "Mordor", "/attacker"} {
			assert.NotContains(t, string(raw), s, "nothing of the attacker in the victim's profile")
		}
	}
}

// hero returns the html of the browser's home-hero block.
func (b *browser) hero(tb testing.TB, n *node) string {
	tb.Helper()
	m := b.decide(tb, n, "")
	h, _ := m["blocks"].(map[string]any)["home-hero"].(map[string]any)["html"].(string)
	return h
}

// get fetches url as the browser and returns the body.
func (b *browser) get(tb testing.TB, url string) string {
	tb.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(tb, err)
	req.Header.Set("User-Agent", chromeUA)
	resp, err := b.c.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}
