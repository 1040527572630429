package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// binary is the etalage binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etalage-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "etalage")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build etalage for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	e2eToken  = "e2e-admin-token-0123"
	e2eAPIKey = "e2e-api-key-0123456"
	e2eSecret = "e2e-cookie-secret-0123456789"
	e2eIdKey  = "e2e-identity-key-0123456789abcdef"
	e2eNow    = "2026-11-24T12:00:00+01:00"
	chromeUA  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

// node is a running etalage process.
type node struct {
	public, admin string
	cmd           *exec.Cmd
	logs          *syncBuffer
	killed        bool // SIGKILLed on purpose: no graceful exit expected
}

// syncBuffer collects a node's output; tests read it while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer l.Close()
	return l.Addr().String()
}

// startNode runs the real binary with store and extra flags, waiting until
// it is ready; it is stopped with SIGTERM when the test ends.
//
// A test whose subject is not deadlines gets generous ones (5 s for the
// decide's read and write, and Redis' own timeouts): the race build beside
// other packages on a busy machine can take longer than production's
// 50/250 ms and answer degraded. Tests of deadlines pass production
// ones (production below) and get the Redis defaults too.
// production are serve's default deadlines, for tests of them.
var production = []string{"--store-deadline", "50ms", "--write-deadline", "250ms"}

func startNode(tb testing.TB, store string, extra ...string) *node {
	tb.Helper()
	if !slices.Contains(extra, "--store-deadline") {
		extra = append([]string{"--store-deadline", "5s", "--write-deadline", "5s"}, extra...)
		if strings.HasPrefix(store, "redis://") || strings.HasPrefix(store, "redis-cluster://") {
			store += "?dial_timeout=5s&read_timeout=5s&write_timeout=5s"
		}
	}
	n := &node{public: freePort(tb), admin: freePort(tb), logs: &syncBuffer{}}
	args := append([]string{"serve",
		"--listen", n.public, "--admin-listen", n.admin, "--store", store,
		"--secret", e2eSecret, "--admin-token", e2eToken, "--api-key", e2eAPIKey, "--identity-key", e2eIdKey,
		"--cookie-secure=false", "--now", e2eNow, "--rate-limit", "0", "--log-format", "json",
	}, extra...)
	n.cmd = exec.Command(binary, args...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	require.NoError(tb, n.cmd.Start())
	tb.Cleanup(func() {
		if n.killed {
			return
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- n.cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(tb, err, "graceful shutdown exits 0")
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			tb.Errorf("etalage did not stop within 15 s of SIGTERM")
		}
		if tb.Failed() {
			tb.Logf("etalage logs:\n%s", n.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + n.public + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("etalage did not come up: %v\n%s", err, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is a cookie-keeping HTTP client with a real browser's user agent.
type browser struct {
	c *http.Client
}

func newBrowser(tb testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(tb, err)
	return &browser{c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) post(tb testing.TB, url, body string, hdr ...string) (int, map[string]any, http.Header) {
	tb.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("User-Agent", chromeUA)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

// cookie returns the browser's visitor cookie for n.
func (b *browser) cookie(tb testing.TB, n *node) string {
	tb.Helper()
	u, err := url.Parse("http://" + n.public + "/")
	require.NoError(tb, err)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "etl" {
			return c.Value
		}
	}
	return ""
}

// identityToken is what a shop backend issues at login: sub signed with
// the identity key, valid for ttl after the nodes' frozen clock.
func identityToken(tb testing.TB, sub string, ttl time.Duration) string {
	tb.Helper()
	now, err := time.Parse(time.RFC3339, e2eNow)
	require.NoError(tb, err)
	tok, err := edge.SignIdentity([]byte(e2eIdKey), sub, now.Add(ttl))
	require.NoError(tb, err)
	return tok
}

func (b *browser) decide(tb testing.TB, n *node, events string) map[string]any {
	tb.Helper()
	status, m, _ := b.post(tb, "http://"+n.public+"/v1/decide", `{"slots":["home-hero","banner-top","home-picks"],"events":[`+events+`]}`)
	require.Equal(tb, 200, status, "%v", m)
	return m
}

func blockOf(m map[string]any, slot string) string {
	b, _ := m["blocks"].(map[string]any)[slot].(map[string]any)
	if b == nil {
		return ""
	}
	s, _ := b["id"].(string)
	return s
}

func adminDo(tb testing.TB, n *node, method, path, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, "http://"+n.admin+path, strings.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

const sneakerView = `{"type":"page_view","url":"/demo/c/sneakers"}`

// journey is the shop journey every store must carry.
func journey(t *testing.T, n *node) {
	t.Run("cookie round trip and behaviour switching a block", func(t *testing.T) {
		b := newBrowser(t)
		first := b.decide(t, n, "")
		assert.NotContains(t, first, "visitor", "the cookie value is never in a browser's answer")
		v := b.cookie(t, n)
		require.NotEmpty(t, v)
		var last map[string]any
		for i := 0; i < 3; i++ {
			last = b.decide(t, n, sneakerView)
		}
		assert.Equal(t, v, b.cookie(t, n), "the cookie came back")
		assert.Equal(t, "hero-sneakers", blockOf(last, "home-hero"))
	})
	t.Run("seasonal purchase", func(t *testing.T) {
		b := newBrowser(t)
		m := b.decide(t, n, `{"type":"purchase","order_id":"e2e-1","items":[{"sku":"playmobil-sint","category":"toys","price":39.99,"gift":true}]}`)
		assert.Equal(t, "sint-banner", blockOf(m, "banner-top"))
		assert.Contains(t, m["segments"], "sint-gift-buyers")
	})
	t.Run("identify across two browsers", func(t *testing.T) {
		a, b := newBrowser(t), newBrowser(t)
		proven := `{"type":"identify","email":"two@example.nl","token":"` + identityToken(t, "email:two@example.nl", time.Hour) + `"}`
		a.decide(t, n, sneakerView+","+sneakerView)
		a.decide(t, n, proven)
		b.decide(t, n, sneakerView)
		mb := b.decide(t, n, proven)
		assert.Equal(t, a.cookie(t, n), b.cookie(t, n), "both browsers now carry the contact's profile")
		assert.Equal(t, "hero-sneakers", blockOf(mb, "home-hero"))
	})
	t.Run("API-key event for a contact", func(t *testing.T) {
		b := newBrowser(t)
		body := `{"contact":{"customer_id":"c-42"},"events":[{"type":"email_click","campaign":"sneaker-week","url":"/demo/c/sneakers"}]}`
		status, _, _ := b.post(t, "http://"+n.public+"/v1/events", body)
		assert.Equal(t, 401, status)
		status, m, _ := b.post(t, "http://"+n.public+"/v1/events", body, "Authorization", "Bearer "+e2eAPIKey)
		require.Equal(t, 202, status, "%v", m)
		code, exp := adminDo(t, n, "GET", "/admin/v1/profiles/customer:c-42", "")
		require.Equal(t, 200, code, "%v", exp)
		raw, _ := json.Marshal(exp)
		assert.Contains(t, string(raw), "sneaker-week")
	})
	t.Run("rejected definitions leave the running ones", func(t *testing.T) {
		_, before := adminDo(t, n, "GET", "/admin/v1/definitions", "")
		code, m := adminDo(t, n, "PUT", "/admin/v1/definitions", "segments: [{id: a, rule: {nope: 1}}]")
		assert.Equal(t, 422, code)
		assert.NotEmpty(t, m["errors"])
		_, after := adminDo(t, n, "GET", "/admin/v1/definitions", "")
		assert.Equal(t, before, after)
	})
}

func TestEndToEndEmbedded(t *testing.T) {
	n := startNode(t, "embedded:"+t.TempDir())
	journey(t, n)
}

func TestEndToEndRedis(t *testing.T) {
	addr := redistest.Server(t)
	n := startNode(t, "redis://"+addr+"/0")
	journey(t, n)
}

func TestEndToEndRedisCluster(t *testing.T) {
	addrs := redistest.Cluster(t)
	n := startNode(t, "redis-cluster://"+strings.Join(addrs, ","))
	journey(t, n)
}

// TestTwoNodesShareDefinitions: a change applied on one node reaches the
// other within a second.
func TestTwoNodesShareDefinitions(t *testing.T) {
	addr := redistest.Server(t)
	a := startNode(t, "redis://"+addr+"/0")
	b := startNode(t, "redis://"+addr+"/0")
	code, m := adminDo(t, a, "PUT", "/admin/v1/definitions", "blocks:\n  - {id: shared-hero, slot: home-hero, html: shared}\n")
	require.Equal(t, 200, code, "%v", m)
	applied := time.Now()
	br := newBrowser(t)
	for {
		if blockOf(br.decide(t, b, ""), "home-hero") == "shared-hero" {
			break
		}
		require.Less(t, time.Since(applied), 3*time.Second, "node b did not pick up the change")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("definitions reached the second node in %v", time.Since(applied).Round(time.Millisecond))
}

// TestRedisKilledMidTest: with Redis gone, decides answer degraded within
// their deadline and events answer 503; with Redis back, both recover.
func TestRedisKilledMidTest(t *testing.T) {
	proc := redistest.StartServer(t)
	n := startNode(t, "redis://"+proc.Addr+"/0", production...)
	b := newBrowser(t)
	// The node runs with production deadlines (the test's subject); on a
	// busy machine a first write can miss its 250 ms, so the healthy
	// baseline is asked until it answers in time.
	var m map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m = b.decide(t, n, sneakerView); m["degraded"] == false {
			break
		}
		require.True(t, time.Now().Before(deadline), "degraded for 10 s with Redis up")
		time.Sleep(100 * time.Millisecond)
	}

	proc.Kill()
	start := time.Now()
	m = b.decide(t, n, sneakerView)
	assert.Equal(t, true, m["degraded"])
	assert.NotEmpty(t, blockOf(m, "home-hero"), "non-personalised blocks still come")
	t.Logf("degraded decide answered in %v", time.Since(start).Round(time.Millisecond))
	status, _, hdr := b.post(t, "http://"+n.public+"/v1/events", `{"events":[`+sneakerView+`]}`)
	assert.Equal(t, 503, status)
	assert.NotEmpty(t, hdr.Get("Retry-After"))

	proc.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = b.decide(t, n, "")
		if m["degraded"] == false {
			break
		}
		require.True(t, time.Now().Before(deadline), "still degraded 10 s after Redis came back")
		time.Sleep(100 * time.Millisecond)
	}
	status, _, _ = b.post(t, "http://"+n.public+"/v1/events", `{"events":[`+sneakerView+`]}`)
	assert.Equal(t, 202, status)
}
