package edge

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// shopCookies returns a Cookie header of about n bytes: a shop on the same
// domain sends all of its own cookies with the snippet's requests.
func shopCookies(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n-len("etl=x"); i++ {
		b.WriteString("shop_" + itoa(int64(i)) + "=" + strings.Repeat("v", 200) + "; ")
	}
	return b.String()[:n-1]
}

// TestRealShopHeaders: up to 16 KB of request headers are served; above the
// read buffer the answer is a JSON 431 (with CORS), never a bare 400.
func TestRealShopHeaders(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedOrigins = []string{"https://shop.example"} })
	for _, n := range []int{4 << 10, 8 << 10, 16 << 10} {
		r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"],"events":[`+pageViews("/a")+`]}`,
			map[string]string{"Cookie": shopCookies(n), "Origin": "https://shop.example"})
		assert.Equal(t, 200, r.status, "%d bytes of cookies: %s", n, r.body)
	}
	// Over a raw connection, written while the answer is read: the server
	// answers 431 and closes without reading the rest of the headers, so a
	// client that insists on writing the whole request first may see
	// "connection closed" instead of the answer.
	c, err := h.publicLn.Dial()
	require.NoError(t, err)
	defer c.Close()
	body := `{"slots":["home-hero"]}`
	go io.WriteString(c, "POST /v1/decide HTTP/1.1\r\nHost: etalage.test\r\nOrigin: https://shop.example\r\n"+
		"Content-Type: application/json\r\nCookie: "+shopCookies(24<<10)+"\r\nContent-Length: "+itoa(int64(len(body)))+"\r\n\r\n"+body)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp fasthttp.Response
	require.NoError(t, resp.Read(bufio.NewReader(c)))
	assert.Equal(t, 431, resp.StatusCode())
	r := &response{status: resp.StatusCode(), body: resp.Body()}
	assert.Equal(t, ECodeHeaders, errorCode(t, r))
	assert.Equal(t, "https://shop.example", string(resp.Header.Peek("Access-Control-Allow-Origin")), "the snippet can read the 431")
}

// TestCORSOnEveryAnswer: errors to an allowed origin carry the CORS
// headers, so the snippet sees the status instead of a network error.
func TestCORSOnEveryAnswer(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.AllowedOrigins = []string{"https://shop.example"}
		c.RateLimit, c.RateBurst = 1000, 1000
	})
	origin := map[string]string{"Origin": "https://shop.example"}
	for _, tc := range []struct {
		name, method, uri, body string
		status                  int
	}{
		{"200 decide", "POST", "/v1/decide", `{"slots":["home-hero"]}`, 200},
		{"400 bad event", "POST", "/v1/events", `{"events":[{"type":"nope"}]}`, 400},
		{"400 malformed JSON", "POST", "/v1/decide", `{`, 400},
		{"401 contact without key", "POST", "/v1/events", `{"contact":{"email":"a@example.nl"},"events":[` + pageViews("/a") + `]}`, 401},
		{"404", "GET", "/v1/nope", "", 404},
		{"405", "PUT", "/v1/events", "{}", 405},
		{"413", "POST", "/v1/events", `{"events":[` + strings.Repeat(" ", 2<<20) + `]}`, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, h.public, tc.method, tc.uri, tc.body, origin)
			assert.Equal(t, tc.status, r.status, string(r.body))
			assert.Equal(t, "https://shop.example", r.headers["Access-Control-Allow-Origin"])
			assert.Equal(t, "true", r.headers["Access-Control-Allow-Credentials"])
			r = call(t, h.public, tc.method, tc.uri, tc.body, map[string]string{"Origin": "https://evil.example"})
			assert.NotContains(t, r.headers, "Access-Control-Allow-Origin", "other origins get none")
		})
	}
	t.Run("429", func(t *testing.T) {
		h := newHarness(t, func(c *Config) {
			c.AllowedOrigins = []string{"https://shop.example"}
			c.RateLimit, c.RateBurst = 1, 1
		})
		call(t, h.public, "POST", "/v1/decide", `{}`, origin)
		r := call(t, h.public, "POST", "/v1/decide", `{}`, origin)
		require.Equal(t, 429, r.status)
		assert.Equal(t, "https://shop.example", r.headers["Access-Control-Allow-Origin"])
	})
	t.Run("unparsable request", func(t *testing.T) {
		c, err := h.publicLn.Dial()
		require.NoError(t, err)
		io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\nContent-Length: nope\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		raw, _ := io.ReadAll(c)
		c.Close()
		assert.Contains(t, string(raw), "400")
		assert.Contains(t, string(raw), "Access-Control-Allow-Origin: https://shop.example")
	})
}

// TestClientAddressIsRightmost: behind the shop's proxy the client address
// is the entry the proxy appended, the rightmost; a client rotating what it
// puts first does not escape its limit.
func TestClientAddressIsRightmost(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ClientIPHeader = "X-Forwarded-For"
		c.RateLimit, c.RateBurst = 1, 2
	})
	limited := 0
	for i := 0; i < 10; i++ {
		r := call(t, h.public, "POST", "/v1/decide", `{}`, map[string]string{"X-Forwarded-For": "10.0.0." + itoa(int64(i)) + ", 198.51.100.7"})
		if r.status == 429 {
			limited++
		}
	}
	assert.GreaterOrEqual(t, limited, 7, "rotating the first entry does not escape the limit")
	r := call(t, h.public, "POST", "/v1/decide", `{}`, map[string]string{"X-Forwarded-For": "198.51.100.7,  198.51.100.8 "})
	assert.Equal(t, 200, r.status, "another client (rightmost entry) has its own budget")
}
