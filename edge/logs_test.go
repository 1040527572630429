package edge

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a log sink tests read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsHoldNoRequestContents: a request fasthttp cannot parse used to be
// logged whole, Authorization header and cookie included.
func TestLogsHoldNoRequestContents(t *testing.T) {
	var logs lockedBuffer
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	const cookie = "0123456789abcdef0123456789abcdef.secretsecretsecret"
	for _, raw := range []string{
		"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIKey + "\r\nCookie: etl=" + cookie + "\r\nContent-Length: nope\r\n\r\n",
		"GET /v1/decide?email=sam@example.nl HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nX-Api-Key: " + testAPIKey + "\r\nTransfer-Encoding: bogus\r\n\r\n",
		"BR0KEN\x00 " + testAPIKey + " sam@example.nl\r\n\r\n",
	} {
		c, err := h.publicLn.Dial()
		require.NoError(t, err)
		io.WriteString(c, raw)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	out := logs.String()
	for _, secret := range []string{testAPIKey, cookie, "sam@example.nl", "203.0.113.7", "Authorization"} {
		assert.NotContains(t, out, secret)
	}
}

func TestRedactLog(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`error when serving connection "127.0.0.1:8080"<->"203.0.113.7:5555": error when reading request headers: x: buffer size=10, contents: "GET / HTTP/1.1\r\nCookie: etl=abc"`,
			`error when serving connection "[redacted]"<->"[redacted]": error when reading request headers: x: buffer size=10, contents: [redacted]`},
		{`read tcp 10.0.0.1:8080->198.51.100.2:40000: i/o timeout`, `read tcp [addr]->[addr]: i/o timeout`},
		{`read tcp [2001:db8::1]:8080->[2001:db8::2]:5: reset`, `read tcp [addr]->[addr]: reset`},
		{`unsupported Transfer-Encoding: 'secret'`, `unsupported Transfer-Encoding: "[redacted]"`},
		{strings.Repeat("x", 400), strings.Repeat("x", maxLogLine) + "…"},
	} {
		assert.Equal(t, tc.want, redactLog(tc.in))
	}
}
