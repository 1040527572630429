package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/rules"
)

// The three-node scenario has flags of its own; it runs with the k6 rows
// (-only cluster runs it alone).
var (
	clusterDuration = flag.Duration("cluster-duration", 24*time.Second, "length of the three-node Redis Cluster scenario (target cluster)")
	clusterConverge = flag.Duration("cluster-converge", time.Second, "time every node has to report a definitions change applied on one of them")
)

const (
	clusterNodes = 3
	// The banner every visitor without a better one sees, and what the
	// definitions change in the middle of the run makes of it.
	bannerBefore = "Gratis verzending vanaf € 50"
	bannerAfter  = "Gratis verzending vanaf € 40 (loadtest change)"
)

// clusterNode is one etalage node of the scenario.
type clusterNode struct {
	server
	before, after nodeCounters
}

// nodeCounters are the figures read from a node's /metrics around the run.
type nodeCounters struct{ degraded, storeErrors, cpu float64 }

func readNodeCounters(admin string) (nodeCounters, error) {
	var c nodeCounters
	var err error
	for _, f := range []struct {
		name string
		into *float64
	}{{"etalage_decide_degraded_total", &c.degraded}, {"etalage_store_errors_total", &c.storeErrors}, {"process_cpu_seconds_total", &c.cpu}} {
		if *f.into, err = counter(admin, f.name); err != nil {
			return c, fmt.Errorf("%s/metrics: %w", admin, err)
		}
	}
	return c, nil
}

// clusterResult is what the scenario found besides k6's figures.
type clusterResult struct {
	redis              []string
	stats              [][2]redisStats // per master: before, after
	fromRev, toRev     int64
	changeAt           time.Duration // from the start of k6
	converged          []time.Duration
	servedNew          []bool
	acked, stored      eventCounts
	requests, duration float64
}

// eventCounts are the events of mixed.js that can be counted in a profile,
// and the profiles they were found in.
type eventCounts struct{ views, carts, orders, profiles int64 }

func (e eventCounts) String() string {
	return fmt.Sprintf("%d page views, %d cart adds, %d orders", e.views, e.carts, e.orders)
}

func (e eventCounts) covers(acked eventCounts) bool {
	return e.views >= acked.views && e.carts >= acked.carts && e.orders >= acked.orders
}

// runCluster is the three-node scenario: a Redis Cluster of three masters,
// three etalage nodes on it with the same secret and API key, k6's mixed
// shop traffic spread round robin over them, and a definitions change PUT
// to the first node half-way. It fails on a k6 threshold, a degraded
// decide or store error on any node, a node that does not report the new
// revision within -cluster-converge or does not serve the changed
// document, and an acknowledged event not found in the cluster afterwards.
func runCluster(ps *procs, k6, etalage, redisBin, work string, o options) ([]row, *clusterResult, error) {
	res := &clusterResult{duration: clusterDuration.Seconds()}
	var err error
	fmt.Fprintln(os.Stderr, "cluster: starting a Redis Cluster of three masters and three etalage nodes")
	if res.redis, err = startRedisCluster(ps, redisBin, work, 1); err != nil {
		return nil, nil, err
	}
	store := "redis-cluster://" + strings.Join(res.redis, ",")
	nodes := make([]clusterNode, clusterNodes)
	var bases []string
	for i := range nodes {
		// One after the other: the first applies the demo definitions to
		// the empty store, the others start on that stored revision.
		name := "cluster-node-" + strconv.Itoa(i+1)
		pub, adm := freeAddr(), freeAddr()
		args := []string{"serve", "--listen", pub, "--admin-listen", adm, "--store", store, "--cache-size", "256MiB",
			"--secret", "loadtest-secret-0123456789abcdef", "--api-key", apiKey,
			"--dev", "--cookie-secure=false", "--rate-limit", "0", "--log-format", "json", "--demo", "false", "--now", frozenNow}
		if err := ps.start(pin(0, etalage, args...), filepath.Join(work, name+".log")); err != nil {
			return nil, nil, err
		}
		if err := waitHTTP("http://" + adm + "/readyz"); err != nil {
			return nil, nil, fmt.Errorf("etalage on %s: %w (log in %s)", store, err, filepath.Join(work, name+".log"))
		}
		nodes[i].server = server{name: name, public: "http://" + pub, admin: "http://" + adm}
		bases = append(bases, nodes[i].public)
	}
	ctx := context.Background()
	if res.fromRev, err = nodeRevision(nodes[0].admin); err != nil {
		return nil, nil, err
	}
	for i := range nodes {
		if nodes[i].before, err = readNodeCounters(nodes[i].admin); err != nil {
			return nil, nil, err
		}
	}
	res.stats = make([][2]redisStats, len(res.redis))
	for i, a := range res.redis {
		if res.stats[i][0], err = readRedisStats(ctx, a); err != nil {
			return nil, nil, err
		}
	}

	summary := filepath.Join(work, "k6-summary-cluster.json")
	fmt.Fprintf(os.Stderr, "k6: mixed shop traffic over %d nodes at %d/s for %s, a definitions change half-way\n", clusterNodes, o.k6Rate, *clusterDuration)
	cmd := pin(1, k6, "run", "--quiet", "--no-color", "--summary-export", summary,
		"--summary-trend-stats", "avg,med,p(95),p(99),max",
		"-e", "BASES="+strings.Join(bases, ","), "-e", "VUS=8", "-e", "DURATION="+strconv.Itoa(int(clusterDuration.Seconds()))+"s",
		// mixed.js's own p99 bound: three nodes share one core here, so
		// the scenario's goal is no errors, its latencies are reported.
		"-e", "P99_MS=50", "-e", "RATE="+strconv.Itoa(o.k6Rate),
		filepath.Join("loadtest", "k6", "mixed.js"))
	log, err := os.Create(summary + ".log")
	if err != nil {
		return nil, nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("k6: %w", err)
	}
	waitTraffic(nodes[0].admin, start.Add(*clusterDuration/2))
	changeErr := res.change(nodes, start)
	thresholdsOK, err := k6Passed(cmd.Wait(), summary+".log")
	if err != nil {
		return nil, nil, fmt.Errorf("k6 mixed.js over %d nodes: %w", clusterNodes, err)
	}
	if changeErr != nil {
		return nil, nil, changeErr
	}

	for i := range nodes {
		if nodes[i].after, err = readNodeCounters(nodes[i].admin); err != nil {
			return nil, nil, err
		}
	}
	for i, a := range res.redis {
		if res.stats[i][1], err = readRedisStats(ctx, a); err != nil {
			return nil, nil, err
		}
	}
	if res.stored, err = storedEvents(ctx, store, nodes[0].admin); err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(summary)
	if err != nil {
		return nil, nil, fmt.Errorf("k6 summary: %w", err)
	}
	rows, err := res.rows(raw, nodes, o.k6Rate, thresholdsOK)
	return rows, res, err
}

// waitTraffic returns once the node has answered a decide and it is at
// least at: the change lands in the traffic, not in k6's start-up.
func waitTraffic(admin string, at time.Time) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n, _ := counter(admin, `etalage_http_requests_total{route="decide",code="200"}`)
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Until(at))
}

// change PUTs a changed definitions document to the first node, then polls
// every node's /readyz until each reports the new revision, and asks each
// for a decision to see it serve the changed banner.
func (res *clusterResult) change(nodes []clusterNode, start time.Time) error {
	var cur struct {
		Revision int64  `json:"revision"`
		Document string `json:"document"`
	}
	req, _ := http.NewRequest("GET", nodes[0].admin+"/admin/v1/definitions", nil)
	if err := do(req, 200, &cur); err != nil {
		return fmt.Errorf("read the definitions: %w", err)
	}
	doc, ok := changeDocument(cur.Document)
	if !ok {
		return fmt.Errorf("the running definitions have no %q banner to change", bannerBefore)
	}
	var put struct{ Revision int64 }
	req, _ = http.NewRequest("PUT", nodes[0].admin+"/admin/v1/definitions?note=loadtest+cluster+change", strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/yaml")
	at := time.Now()
	res.changeAt = at.Sub(start)
	if err := do(req, 200, &put); err != nil {
		return fmt.Errorf("apply the changed definitions: %w", err)
	}
	res.toRev = put.Revision
	revs := make([]func() (int64, error), len(nodes))
	for i := range nodes {
		admin := nodes[i].admin
		revs[i] = func() (int64, error) { return nodeRevision(admin) }
	}
	// Polled for five times the limit, so that a slow node's time is
	// reported rather than cut off.
	res.converged = converge(revs, put.Revision, at, 5**clusterConverge, time.Now, time.Sleep)
	for _, n := range nodes {
		var d struct {
			Blocks map[string]struct{ HTML string }
		}
		err := post(n.public+"/v1/decide", `{"slots":["banner-top"],"context":{"url":"/demo/"}}`, 200, &d)
		res.servedNew = append(res.servedNew, err == nil && strings.Contains(d.Blocks["banner-top"].HTML, bannerAfter))
	}
	return nil
}

// changeDocument changes the default banner's text, a change every
// visitor without a better banner sees.
func changeDocument(doc string) (string, bool) {
	if !strings.Contains(doc, bannerBefore) {
		return doc, false
	}
	return strings.Replace(doc, bannerBefore, bannerAfter, 1), true
}

// nodeRevision reads the definitions revision a node runs from /readyz.
func nodeRevision(admin string) (int64, error) {
	var r struct {
		Rev *int64 `json:"definitions_revision"`
	}
	resp, err := client.Get(admin + "/readyz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil || r.Rev == nil {
		return 0, fmt.Errorf("%s/readyz: no definitions_revision in %s", admin, b)
	}
	return *r.Rev, nil
}

// converge polls each node's revision until every one reports at least
// want or giveUp has passed since start, and returns each node's time from
// start to the first poll that saw it; -1 for a node that never did.
func converge(revs []func() (int64, error), want int64, start time.Time, giveUp time.Duration, now func() time.Time, sleep func(time.Duration)) []time.Duration {
	out := make([]time.Duration, len(revs))
	for i := range out {
		out[i] = -1
	}
	for left := len(revs); left > 0; {
		t := now()
		for i, rev := range revs {
			if out[i] >= 0 {
				continue
			}
			if r, err := rev(); err == nil && r >= want {
				out[i] = t.Sub(start)
				left--
			}
		}
		if left == 0 || t.Sub(start) >= giveUp {
			break
		}
		sleep(5 * time.Millisecond)
	}
	return out
}

// convergedWithin reports whether every node saw the change within limit.
func convergedWithin(times []time.Duration, limit time.Duration) bool {
	for _, t := range times {
		if t < 0 || t > limit {
			return false
		}
	}
	return len(times) > 0
}

// storedEvents counts, over every profile in the cluster, the events of
// mixed.js that a profile keeps count of: page views and cart adds (in the
// primary and the seasonal profiles: gifts go to a season) and orders
// (every counted order id is remembered by the primary profile).
func storedEvents(ctx context.Context, store, admin string) (eventCounts, error) {
	var cur struct{ Document string }
	req, _ := http.NewRequest("GET", admin+"/admin/v1/definitions", nil)
	if err := do(req, 200, &cur); err != nil {
		return eventCounts{}, fmt.Errorf("read the definitions: %w", err)
	}
	set, err := rules.Compile([]byte(cur.Document))
	if err != nil {
		return eventCounts{}, fmt.Errorf("compile the running definitions: %w", err)
	}
	pol := set.Policy(profile.Policy{})
	st, err := redisstore.Open(ctx, store, redisstore.Options{})
	if err != nil {
		return eventCounts{}, err
	}
	defer st.Close()
	now, _ := time.Parse(time.RFC3339, frozenNow)
	svc := profile.NewService(st, profile.Options{Now: func() time.Time { return now }})
	var total eventCounts
	cursor := ""
	for {
		pids, next, err := st.Scan(ctx, cursor, 500)
		if err != nil {
			return eventCounts{}, err
		}
		for _, pid := range pids {
			snap, err := svc.Load(ctx, pid, pol)
			if err != nil {
				return eventCounts{}, err
			}
			c := countEvents(snap)
			total.views += c.views
			total.carts += c.carts
			total.orders += c.orders
			total.profiles++
		}
		if next == "" {
			return total, nil
		}
		cursor = next
	}
}

func countEvents(s *profile.Snapshot) eventCounts {
	var c eventCounts
	for _, p := range append([]*profile.Profile{s.Primary}, s.Seasonal...) {
		if p == nil {
			continue
		}
		for _, b := range p.Behaviour {
			switch b.Type {
			case profile.PageView:
				c.views += int64(b.Total)
			case profile.CartAdd:
				c.carts += int64(b.Total)
			}
		}
	}
	c.orders = int64(len(s.Primary.Orders))
	return c
}

// rows reads k6's summary into one row per node and one for all of them,
// and decides pass or fail.
func (res *clusterResult) rows(summary []byte, nodes []clusterNode, rate int, thresholdsOK bool) ([]row, error) {
	var raw struct {
		Metrics map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(summary, &raw); err != nil {
		return nil, fmt.Errorf("k6 summary: %w", err)
	}
	m := func(name, k string) float64 {
		f, _ := raw.Metrics[name][k].(float64)
		return f
	}
	res.acked = eventCounts{views: int64(m("views_acknowledged", "count")), carts: int64(m("carts_acknowledged", "count")), orders: int64(m("orders_acknowledged", "count"))}
	errRate := m("http_req_failed", "value")
	if c := m("checks", "passes") + m("checks", "fails"); c > 0 {
		errRate = max(errRate, m("checks", "fails")/c)
	}
	conns := fmt.Sprintf("8 @ %d/s", rate)
	converged := convergedWithin(res.converged, *clusterConverge)
	var rows []row
	var cpu, bad float64
	for i, n := range nodes {
		tag := fmt.Sprintf("{node:n%d}", i+1)
		reqs := m("http_reqs"+tag, "count")
		res.requests += reqs
		dur := "http_req_duration" + tag
		r := row{key: fmt.Sprintf("cluster_n%d", i+1), name: fmt.Sprintf("mixed shop traffic, 3 nodes on a Redis Cluster: node %d", i+1),
			generator: "k6", conns: conns, rps: reqs / res.duration, p50: m(dur, "med"), p95: m(dur, "p(95)"), p99: m(dur, "p(99)")}
		degraded := n.after.degraded - n.before.degraded
		storeErrs := n.after.storeErrors - n.before.storeErrors
		var notes []string
		if reqs > 0 {
			r.errors = (degraded + storeErrs) / reqs
			notes = append(notes, fmt.Sprintf("CPU %.3f ms/request", 1000*(n.after.cpu-n.before.cpu)/reqs))
		}
		if degraded+storeErrs > 0 {
			notes = append(notes, fmt.Sprintf("%.0f degraded decides, %.0f store errors", degraded, storeErrs))
		}
		if i < len(res.converged) {
			notes = append(notes, "new revision after "+seconds(res.converged[i]))
		}
		if i < len(res.servedNew) && !res.servedNew[i] {
			notes = append(notes, "does NOT serve the changed banner")
			r.failed = true
		}
		r.note = strings.Join(notes, "; ")
		r.failed = r.failed || r.errors > 0 || reqs == 0
		cpu += n.after.cpu - n.before.cpu
		bad += degraded + storeErrs
		rows = append(rows, r)
	}
	all := row{key: "cluster", name: "mixed shop traffic, 3 nodes on a Redis Cluster: all", generator: "k6", conns: conns,
		rps: res.requests / res.duration, p50: m("http_req_duration{scenario:shop}", "med"),
		p95: m("http_req_duration{scenario:shop}", "p(95)"), p99: m("http_req_duration{scenario:shop}", "p(99)"), errors: errRate}
	if res.requests > 0 {
		all.errors += bad / res.requests
	}
	notes := []string{"thresholds pass"}
	if !thresholdsOK {
		notes[0] = "thresholds FAILED"
	}
	if res.requests > 0 {
		notes = append(notes, fmt.Sprintf("CPU %.3f ms/request", 1000*cpu/res.requests))
	}
	if d := m("dropped_iterations", "count"); d > 0 {
		// Not an error: k6's 8 connections fell behind the arrival rate.
		notes = append(notes, fmt.Sprintf("%.0f requests not sent: the generator fell behind the rate", d))
	}
	notes = append(notes, fmt.Sprintf("revision %d→%d on every node within %s: %s", res.fromRev, res.toRev, *clusterConverge, verdict(converged)))
	notes = append(notes, fmt.Sprintf("acknowledged %s; found %s", res.acked, res.stored))
	all.note = strings.Join(notes, "; ")
	all.failed = !thresholdsOK || !converged || !res.stored.covers(res.acked) || all.errors > 0
	for _, r := range rows {
		all.failed = all.failed || r.failed
	}
	return append(rows, all), nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func seconds(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}

// print writes what the table has no columns for: when the change came,
// each node's time to take it, and what each Redis master did.
func (res *clusterResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nThree nodes on a Redis Cluster (%s of k6 mixed.js, round robin):\n", *clusterDuration)
	var times []string
	for i, t := range res.converged {
		times = append(times, fmt.Sprintf("node %d %s", i+1, seconds(t)))
	}
	fmt.Fprintf(w, "- definitions: revision %d→%d PUT to node 1 at %s into the run; reported by %s (limit %s: %s)\n",
		res.fromRev, res.toRev, seconds(res.changeAt), strings.Join(times, ", "), *clusterConverge, verdict(convergedWithin(res.converged, *clusterConverge)))
	served := true
	for _, s := range res.servedNew {
		served = served && s
	}
	fmt.Fprintf(w, "- every node serves the changed banner afterwards: %s\n", verdict(served && len(res.servedNew) > 0))
	fmt.Fprintf(w, "- events: acknowledged %s; found in the cluster %s (in %d profiles): %s\n", res.acked, res.stored, res.stored.profiles, verdict(res.stored.covers(res.acked)))
	for i, s := range res.stats {
		cmds, cpu := s[1].commands-s[0].commands, s[1].cpu-s[0].cpu
		perReq := 0.0
		if res.requests > 0 {
			perReq = 1e6 * cpu / res.requests
		}
		fmt.Fprintf(w, "- Redis master %d (%s): %.0f commands/s, CPU %.1f%% of a core (%.1f µs per request of all nodes), used_memory %.1f MB\n",
			i+1, res.redis[i], cmds/res.duration, 100*cpu/res.duration, perReq, s[1].memory/1e6)
	}
}
