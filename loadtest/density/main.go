// Command density measures how many returning visitors an etalage node
// keeps in its profile cache per GiB of resident memory. It starts a
// throwaway Redis and one etalage node on free ports, creates visitors
// through the public API (one decide carrying a typical returning
// visitor's events: 40 page views of 20 product pages over four days,
// fields, a cart, an order, an interest; then a decide that reads the
// profile back), and reports the node's resident memory (VmRSS and its
// peak VmHWM from /proc), its Go heap, the share of visitors still cached
// (a sample decided again, counted on /metrics) and the bytes per visitor.
//
//	go run ./loadtest/density -visitors 1000000
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/etalage/etalage/edge"
	"github.com/valyala/fasthttp"
)

const apiKey = "density-api-key"

type options struct {
	visitors  int
	conns     int
	cacheSize string
	sample    int
	keep      bool
}

func main() {
	var o options
	flag.IntVar(&o.visitors, "visitors", 100_000, "returning visitors to create")
	flag.IntVar(&o.conns, "conns", 32, "concurrent connections")
	flag.StringVar(&o.cacheSize, "cache-size", "1536MiB", "the node's --cache-size")
	flag.IntVar(&o.sample, "sample", 20_000, "visitors decided again at the end to count how many are still cached")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	work, err := os.MkdirTemp("", "etalage-density-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "etalage")
	build := exec.Command("go", "build", "-o", bin, "./cmd/etalage")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build etalage: %w", err)
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return err
	}
	redisAddr, pub, adm := addrs[0], addrs[1], addrs[2]
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	redis, err := start(filepath.Join(work, "redis.log"), "redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work)
	if err != nil {
		return err
	}
	defer stop(redis)
	node, err := start(filepath.Join(work, "etalage.log"), bin, "serve", "--listen", pub, "--admin-listen", adm,
		"--store", "redis://"+redisAddr+"/0", "--cache-size", o.cacheSize, "--cache-ttl", "24h",
		"--secret", "density-secret-0123456789abcdef", "--api-key", apiKey, "--dev", "--cookie-secure=false",
		"--rate-limit", "0", "--store-deadline", "2s", "--write-deadline", "5s", "--log-format", "json", "--demo", "false")
	if err != nil {
		return err
	}
	defer stop(node)
	if err := waitReady("http://" + adm + "/readyz"); err != nil {
		return fmt.Errorf("etalage: %w (log in %s)", err, filepath.Join(work, "etalage.log"))
	}
	c := &fasthttp.HostClient{Addr: pub, MaxConns: o.conns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}

	fmt.Printf("filling %d visitors over %d connections (cache %s)\n", o.visitors, o.conns, o.cacheSize)
	begin := time.Now()
	visitors := make([]string, o.visitors)
	var next, done, failed, retries atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range o.conns {
		wg.Go(func() {
			var body []byte
			for {
				i := int(next.Add(1)) - 1
				if i >= o.visitors || failed.Load() > 100 {
					return
				}
				body = typicalVisitor(body[:0], i, begin)
				v, err := retry(c, body, &retries)
				if err == nil {
					visitors[i] = v
					body = append(append(append(body[:0], `{"visitor":"`...), v...), `","slots":["home-hero","banner-top","home-picks"],"context":{"url":"/shop/"}}`...)
					_, err = retry(c, body, &retries)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				if n := done.Add(1); n%100_000 == 0 {
					fmt.Printf("  %d visitors, %.0f/s\n", n, float64(n)/time.Since(begin).Seconds())
				}
			}
		})
	}
	wg.Wait()
	fill := time.Since(begin)
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d visitors failed, first: %v", n, o.visitors, firstErr.Load())
	}
	time.Sleep(3 * time.Second) // ristretto's buffered sets land

	rss, hwm, err := procMemory(node.Process.Pid)
	if err != nil {
		return err
	}
	m, err := metrics(adm)
	if err != nil {
		return err
	}
	// A forced collection: what is left is the live heap.
	if _, err := get("http://" + adm + "/debug/pprof/heap?gc=1"); err != nil {
		return err
	}
	live, err := metrics(adm)
	if err != nil {
		return err
	}
	// Decide a sample again: the share answered from the cache is the
	// share of all visitors still cached.
	r := rand.New(rand.NewPCG(1, 2))
	var body []byte
	for range min(o.sample, o.visitors) {
		v := visitors[r.IntN(o.visitors)]
		body = append(append(append(body[:0], `{"visitor":"`...), v...), `","slots":["home-hero"]}`...)
		if _, err := decide(c, body); err != nil {
			return err
		}
	}
	after, err := metrics(adm)
	if err != nil {
		return err
	}
	hits := after["etalage_profile_cache_hits_total"] - live["etalage_profile_cache_hits_total"]
	misses := after["etalage_profile_cache_misses_total"] - live["etalage_profile_cache_misses_total"]
	cached := hits / (hits + misses)
	redisMem, err := redisUsedMemory(redisAddr)
	if err != nil {
		return err
	}
	n := float64(o.visitors)
	fmt.Printf("\nfilled %d visitors in %s (%.0f visitors/s, 2 decides each; %d decides retried after a degraded answer)\n", o.visitors, fill.Round(time.Second), n/fill.Seconds(), retries.Load())
	fmt.Printf("cache: %.1f%% of a %d-visitor sample answered from the cache (%.0f hits, %.0f misses) => ~%.0f visitors cached\n", 100*cached, min(o.sample, o.visitors), hits, misses, cached*n)
	fmt.Printf("node RSS: %s now (VmRSS), %s peak (VmHWM); soft memory limit %s\n", mib(rss), mib(hwm), mib(edge.MemoryLimit(cacheBytes(o.cacheSize))))
	fmt.Printf("Go heap: %s allocated at the end of the fill, %s live after a forced GC\n", mib(int64(m["go_memstats_heap_alloc_bytes"])), mib(int64(live["go_memstats_heap_alloc_bytes"])))
	fmt.Printf("per cached visitor: %.0f bytes RSS (peak %.0f), %.0f bytes live heap\n", float64(rss)/(cached*n), float64(hwm)/(cached*n), live["go_memstats_heap_alloc_bytes"]/(cached*n))
	fmt.Printf("Redis used_memory: %s (%.0f bytes per visitor)\n", mib(redisMem), float64(redisMem)/n)
	return nil
}

// typicalVisitor appends the decide body that makes visitor i a typical
// returning visitor: 40 views of 20 product pages (of a 50,000-product
// catalogue) over four visits a week apart, a form with two fields, an
// interest, a cart line and an order of two lines. The events carry past
// timestamps (an API-key caller may send them).
func typicalVisitor(b []byte, i int, now time.Time) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 18))
	b = append(b, `{"slots":["home-hero"],"events":[`...)
	var pages [20]int
	for j := range pages {
		pages[j] = r.IntN(50_000)
	}
	cats := [...]string{"sneakers", "running", "outdoor", "kids", "toys", "shirts", "jackets", "socks"}
	for visit := range 4 {
		ts := now.Add(-time.Duration(3-visit)*7*24*time.Hour - time.Hour).Unix()
		for j := range 10 {
			p := pages[(visit*10+j)%20]
			b = append(b, `{"type":"page_view","url":"/shop/p/`...)
			b = append(b, cats[p%len(cats)]...)
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(p), 10)
			b = append(b, `","ts":`...)
			b = strconv.AppendInt(b, ts+int64(j)*40, 10)
			b = append(b, `},`...)
		}
	}
	sku := "sku-" + strconv.Itoa(pages[3])
	b = append(b, `{"type":"form_submit","form":"newsletter","fields":{"first_name":"Anna","city":"Utrecht"}},`...)
	b = append(b, `{"type":"interest","name":"running","on":true},`...)
	b = append(b, `{"type":"cart_add","sku":"`+sku+`","category":"sneakers","price":129.95},`...)
	b = append(b, `{"type":"purchase","order_id":"o-`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","items":[{"sku":"sku-`...)
	b = strconv.AppendInt(b, int64(pages[7]), 10)
	b = append(b, `","category":"running","price":39.99},{"sku":"sku-`...)
	b = strconv.AppendInt(b, int64(pages[9]), 10)
	b = append(b, `","category":"socks","price":9.99,"quantity":2}]}]}`...)
	return b
}

// retry decides, again after a degraded answer (the store was slow under
// the fill's load), at most three times; a decide that recorded its
// events and answered degraded is not told apart, so the events may count
// twice, which changes a profile's counts but hardly its size.
func retry(c *fasthttp.HostClient, body []byte, retries *atomic.Int64) (string, error) {
	for attempt := 0; ; attempt++ {
		v, err := decide(c, body)
		if !errors.Is(err, errDegraded) || attempt == 3 {
			return v, err
		}
		retries.Add(1)
		time.Sleep(time.Second)
	}
}

var errDegraded = errors.New("degraded answer")

// decide posts a decide body and returns the visitor value of the answer.
func decide(c *fasthttp.HostClient, body []byte) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.Addr + "/v1/decide")
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Api-Key", apiKey)
	req.SetBody(body)
	if err := c.Do(req, resp); err != nil {
		return "", err
	}
	out := resp.Body()
	if resp.StatusCode() != 200 {
		return "", fmt.Errorf("decide: %d %s", resp.StatusCode(), out)
	}
	if bytes.Contains(out, []byte(`"degraded":true`)) {
		return "", fmt.Errorf("decide: %w", errDegraded)
	}
	_, v, ok := bytes.Cut(out, []byte(`"visitor":"`))
	if !ok {
		return "", fmt.Errorf("decide: no visitor in %s", out)
	}
	v, _, _ = bytes.Cut(v, []byte(`"`))
	return string(v), nil
}

// metrics reads the node's /metrics (from the admin listener) as numbers
// by metric line name.
func metrics(adm string) (map[string]float64, error) {
	body, err := get("http://" + adm + "/metrics")
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = f
		}
	}
	return m, nil
}

func get(url string) ([]byte, error) {
	status, body, err := fasthttp.GetTimeout(nil, url, time.Minute)
	if err == nil && status != 200 {
		err = fmt.Errorf("GET %s: %d %s", url, status, body)
	}
	return body, err
}

// procMemory returns the resident set and its peak (VmRSS, VmHWM) in bytes.
func procMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/<pid>/status")
	}
	return rss, hwm, nil
}

// redisUsedMemory asks Redis for its used_memory.
func redisUsedMemory(addr string) (int64, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("INFO memory\r\n")); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// cacheBytes reads a --cache-size given in MiB or GiB.
func cacheBytes(cacheSize string) int64 {
	n, unit := cacheSize, int64(1)
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}} {
		if v, ok := strings.CutSuffix(cacheSize, u.s); ok {
			n, unit = v, u.m
		}
	}
	b, _ := strconv.ParseInt(n, 10, 64)
	return b * unit
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// freeAddrs returns n distinct free loopback addresses: their listeners
// are all open at once, so none is handed out twice.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs, nil
}

// start runs a process in its own process group with its output in logPath.
func start(logPath, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitReady(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, err := fasthttp.GetTimeout(nil, url, time.Second)
		if err == nil && status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready at %s: %v (status %d)", url, err, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
