package integrity_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

var (
	flagDeadlines = flag.Duration("integrity.deadlines", 0, "measure decides carrying events on the embedded store for this long (0: skip)")
	flagWriters   = flag.Int("integrity.writers", 64, "concurrent writers of -integrity.deadlines")
)

// TestDeadlinesEmbedded measures, on demand, what the finding
// measured: 64 concurrent writers, each a browser of its own sending
// decides that carry a page view one after the other, against one node on
// the embedded store with the default deadlines (--write-deadline 250 ms).
// It prints the latency percentiles and how many answered degraded. Run
// without -race:
//
//	go test -run '^TestDeadlinesEmbedded$' ./integrity/ -integrity.deadlines=20s -v
func TestDeadlinesEmbedded(t *testing.T) {
	if *flagDeadlines == 0 {
		t.Skip("on demand: -integrity.deadlines=20s")
	}
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	srv, err := edge.New(context.Background(), st, edge.Config{
		Secrets:    [][]byte{[]byte("deadline-secret-0123456789")},
		AdminToken: "deadline-admin-token",
		APIKey:     "deadline-api-key",
		Demo:       true,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	pub, adm := fasthttputil.NewInmemoryListener(), fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pub, adm) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		st.Close()
	}()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return pub.Dial() }, MaxConnsPerHost: 1024}
	decide := func(cookie, url string) (time.Duration, string, bool, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://etalage/v1/decide")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		req.Header.SetUserAgent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
		if cookie != "" {
			req.Header.SetCookie("etl", cookie)
		}
		req.SetBodyString(fmt.Sprintf(`{"slots":["home-hero"],"events":[{"type":"page_view","url":%q}]}`, url))
		start := time.Now()
		err := c.DoTimeout(req, resp, 30*time.Second)
		took := time.Since(start)
		if err != nil {
			return took, cookie, false, err
		}
		if resp.StatusCode() != 200 {
			return took, cookie, false, fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		var out struct {
			Degraded bool `json:"degraded"`
		}
		json.Unmarshal(resp.Body(), &out)
		if ck := resp.Header.PeekCookie("etl"); len(ck) > 0 {
			var k fasthttp.Cookie
			if k.ParseBytes(ck) == nil {
				cookie = string(k.Value())
			}
		}
		return took, cookie, out.Degraded, nil
	}
	// The first request builds the user-agent matcher; the writers should
	// meet only the store.
	_, _, _, err = decide("", "/warm")
	require.NoError(t, err)

	var mu sync.Mutex
	var lat, stored []time.Duration
	degraded, failed := 0, 0
	end := time.Now().Add(*flagDeadlines)
	var wg sync.WaitGroup
	for w := range *flagWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cookie := ""
			for i := 0; time.Now().Before(end); i++ {
				took, next, deg, err := decide(cookie, fmt.Sprintf("/w/%d/%d", w, i%50))
				cookie = next
				mu.Lock()
				lat = append(lat, took)
				if err != nil {
					failed++
				} else if deg {
					degraded++
				} else {
					stored = append(stored, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.NotEmpty(t, lat)
	slices.Sort(lat)
	slices.Sort(stored)
	q := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))].Round(time.Millisecond / 10)
	}
	t.Logf("%d writers for %v: %d decides carrying a page view (%.0f/s)", *flagWriters, *flagDeadlines, len(lat), float64(len(lat))/flagDeadlines.Seconds())
	t.Logf("all answers: p50 %v, p90 %v, p99 %v, max %v", q(lat, .5), q(lat, .9), q(lat, .99), q(lat, 1))
	t.Logf("stored (not degraded) %d: p50 %v, p90 %v, p99 %v, max %v", len(stored), q(stored, .5), q(stored, .9), q(stored, .99), q(stored, 1))
	t.Logf("degraded %d (%.2f%%), failed %d", degraded, 100*float64(degraded)/float64(len(lat)), failed)
}
