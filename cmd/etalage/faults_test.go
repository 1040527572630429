package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadFigures counts what a steady load saw.
type loadFigures struct {
	decides, decideFailures, degraded atomic.Int64
	eventsAcked, eventsRefused        atomic.Int64
	connErrors                        atomic.Int64   // the service itself unreachable
	acked                             []atomic.Int64 // per worker: page views acknowledged
}

// steadyLoad runs workers until stop is closed: each is one browser that
// alternately sends one page view to /v1/events and asks /v1/decide.
func steadyLoad(t *testing.T, n *node, workers int, stop <-chan struct{}) (*loadFigures, []*browser) {
	f := &loadFigures{acked: make([]atomic.Int64, workers)}
	browsers := make([]*browser, workers)
	var wg sync.WaitGroup
	for w := range workers {
		browsers[w] = newBrowser(t)
		b := browsers[w]
		b.c.Timeout = 5 * time.Second
		// Each browser gets its cookie before the load starts.
		b.decide(t, n, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := `{"events":[{"type":"page_view","url":"/fault/` + strconv.Itoa(w) + `"}]}`
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, _ := try(b, "http://"+n.public+"/v1/events", ev)
				switch status {
				case 0:
					f.connErrors.Add(1)
					continue
				case 202:
					f.eventsAcked.Add(1)
					f.acked[w].Add(1)
				case 503:
					f.eventsRefused.Add(1)
				default:
					t.Errorf("events answered %d", status)
				}
				status, m := try(b, "http://"+n.public+"/v1/decide", `{"slots":["home-hero"]}`)
				f.decides.Add(1)
				if status != 200 {
					f.decideFailures.Add(1)
				} else if m["degraded"] == true {
					f.degraded.Add(1)
				}
			}
		}()
	}
	t.Cleanup(wg.Wait)
	go func() { <-stop; wg.Wait() }()
	return f, browsers
}

// storedViews reads back, through the admin API, how many page views of
// /fault/<w> the browser's profile holds.
func storedViews(t *testing.T, n *node, b *browser, w int) int64 {
	t.Helper()
	var visitor string
	for _, c := range b.c.Jar.Cookies(mustURL("http://" + n.public + "/")) {
		if c.Name == "etl" {
			visitor = c.Value
		}
	}
	require.NotEmpty(t, visitor)
	code, m := adminDo(t, n, "GET", "/admin/v1/profiles/"+visitor, "")
	require.Equal(t, 200, code, "%v", m)
	prof, _ := m["primary"].(map[string]any)
	if p, ok := m["profile"].(map[string]any); ok {
		prof, _ = p["primary"].(map[string]any)
	}
	var total int64
	beh, _ := prof["behaviour"].([]any)
	for _, c := range beh {
		c := c.(map[string]any)
		if c["event"] == "page_view" && c["url"] == "/fault/"+strconv.Itoa(w) {
			total += int64(c["total"].(float64))
		}
	}
	return total
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

// TestFaultRedisKilledUnderLoad: Redis (persisting every write) is killed
// and restarted under a steady load. Every decide answers 200 (degraded
// while Redis is away), no acknowledged event is missing afterwards, memory
// stays bounded, and decisions are personalised again soon after.
func TestFaultRedisKilledUnderLoad(t *testing.T) {
	proc := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	n := startNode(t, "redis://"+proc.Addr+"/0", production...)
	stop := make(chan struct{})
	const workers = 4
	f, browsers := steadyLoad(t, n, workers, stop)

	time.Sleep(1500 * time.Millisecond)
	proc.Kill()
	rssBefore := rssKB(n.cmd.Process.Pid)
	time.Sleep(2 * time.Second)
	rssDown := rssKB(n.cmd.Process.Pid)
	degradedWhileDown := f.degraded.Load()
	proc.Restart()
	back := time.Now()
	b := newBrowser(t)
	var recovered time.Duration
	for {
		m := b.decide(t, n, "")
		if m["degraded"] == false {
			recovered = time.Since(back)
			break
		}
		require.Less(t, time.Since(back), 10*time.Second, "still degraded 10 s after Redis came back")
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	time.Sleep(200 * time.Millisecond)

	var stored int64
	for w := range workers {
		got := storedViews(t, n, browsers[w], w)
		assert.GreaterOrEqual(t, got, f.acked[w].Load(), "worker %d: every acknowledged event is stored", w)
		stored += got
	}
	t.Logf("redis killed under load: %d decides (%d failed, %d degraded, %d while down), events %d acknowledged / %d refused with 503, %d found stored afterwards; personalised again %v after restart; RSS %d KB before, %d KB while down",
		f.decides.Load(), f.decideFailures.Load(), f.degraded.Load(), degradedWhileDown, f.eventsAcked.Load(), f.eventsRefused.Load(), stored, recovered.Round(time.Millisecond), rssBefore, rssDown)
	assert.Zero(t, f.decideFailures.Load(), "every decide answers 200")
	assert.Zero(t, f.connErrors.Load(), "the service stays reachable")
	assert.Positive(t, degradedWhileDown, "decides were degraded while Redis was away")
	assert.Positive(t, f.eventsRefused.Load(), "events were refused while Redis was away")
	assert.Less(t, rssDown, rssBefore+64*1024, "memory stays bounded while Redis is away")
}

// TestFaultSlowRedis: Redis stalls (DEBUG SLEEP); decides keep their
// deadline and answer degraded instead of waiting.
func TestFaultSlowRedis(t *testing.T) {
	proc := redistest.StartServer(t, "--enable-debug-command", "yes")
	addr := proc.Addr
	n := startNode(t, "redis://"+addr+"/0", slices.Concat(production, []string{"--cache-size", "0"})...)
	b := newBrowser(t)
	b.decide(t, n, sneakerView)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Do(context.Background(), "DEBUG", "SLEEP", "1.5").Err() }()
	time.Sleep(100 * time.Millisecond)
	var slowest time.Duration
	degraded := 0
	for range 5 {
		start := time.Now()
		m := b.decide(t, n, "")
		slowest = max(slowest, time.Since(start))
		if m["degraded"] == true {
			degraded++
		}
	}
	require.NoError(t, <-done)
	t.Logf("slow redis: %d of 5 decides degraded, slowest answered in %v (store deadline 50ms)", degraded, slowest.Round(time.Millisecond))
	assert.Equal(t, 5, degraded)
	assert.Less(t, slowest, 500*time.Millisecond, "decides keep their deadline")
	assert.Equal(t, false, b.decide(t, n, "")["degraded"], "personalised again once Redis answers")
}

// TestFaultKilledDuringWrites: the service is SIGKILLed while writing to the
// embedded store; restarted on the same directory, it opens cleanly and
// every acknowledged event is there.
func TestFaultKilledDuringWrites(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, "embedded:"+dir)
	stop := make(chan struct{})
	const workers = 4
	f, browsers := steadyLoad(t, n, workers, stop)
	time.Sleep(1500 * time.Millisecond)
	n.killed = true
	require.NoError(t, n.cmd.Process.Kill())
	n.cmd.Wait()
	close(stop)
	time.Sleep(300 * time.Millisecond)

	n2 := startNode(t, "embedded:"+dir)
	var stored int64
	for w := range workers {
		// The cookies were issued for n's address; present them to n2.
		for _, c := range browsers[w].c.Jar.Cookies(mustURL("http://" + n.public + "/")) {
			browsers[w].c.Jar.SetCookies(mustURL("http://"+n2.public+"/"), []*httpCookie{c})
		}
		got := storedViews(t, n2, browsers[w], w)
		assert.GreaterOrEqual(t, got, f.acked[w].Load(), "worker %d: every acknowledged event survived SIGKILL", w)
		stored += got
	}
	t.Logf("SIGKILL during writes: %d events acknowledged, %d found after restart", f.eventsAcked.Load(), stored)
	assert.Positive(t, f.eventsAcked.Load())
}

type httpCookie = http.Cookie

// try posts like browser.post but reports a transport error as status 0
// instead of failing: it runs in load goroutines, and the service may be
// killed under it.
func try(b *browser, u, body string) (int, map[string]any) {
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("User-Agent", chromeUA)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestFaultClusterNodeStopped: one of three Redis Cluster masters stops;
// visitors whose keys live on the other two stay personalised, the others
// get degraded answers, and every decide answers 200.
func TestFaultClusterNodeStopped(t *testing.T) {
	procs := redistest.StartCluster(t)
	addrs := make([]string, len(procs))
	for i, p := range procs {
		addrs[i] = p.Addr
	}
	n := startNode(t, "redis-cluster://"+strings.Join(addrs, ","), slices.Concat(production, []string{"--cache-size", "0"})...)
	const visitors = 30
	bs := make([]*browser, visitors)
	for i := range bs {
		bs[i] = newBrowser(t)
		bs[i].decide(t, n, sneakerView+","+sneakerView+","+sneakerView)
	}
	procs[2].Kill()
	time.Sleep(200 * time.Millisecond)
	personalised, degraded := 0, 0
	for _, b := range bs {
		status, m := try(b, "http://"+n.public+"/v1/decide", `{"slots":["home-hero"]}`)
		require.Equal(t, 200, status, "every decide answers 200")
		if m["degraded"] == true {
			degraded++
		} else {
			assert.Equal(t, "hero-sneakers", blockOf(m, "home-hero"))
			personalised++
		}
	}
	t.Logf("cluster node stopped: %d of %d visitors still personalised, %d degraded", personalised, visitors, degraded)
	assert.Positive(t, personalised, "keys on the other nodes keep serving")
	assert.Positive(t, degraded, "the lost slots degrade")
}
