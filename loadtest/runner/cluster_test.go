package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock advances by each sleep, so that convergence is tested without
// waiting.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time             { return c.t }
func (c *fakeClock) sleep(d time.Duration)      { c.t = c.t.Add(d) }
func (c *fakeClock) after(d time.Duration) bool { return !c.t.Before(time.Unix(0, 0).Add(d)) }

func TestConverge(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	start := clock.t
	// Node 1 took the change when it was applied, node 2 picks it up at
	// 300 ms (its poll), node 3 answers errors until 40 ms and then runs
	// the old revision until 1.2 s.
	revs := []func() (int64, error){
		func() (int64, error) { return 8, nil },
		func() (int64, error) {
			if clock.after(300 * time.Millisecond) {
				return 8, nil
			}
			return 7, nil
		},
		func() (int64, error) {
			switch {
			case !clock.after(40 * time.Millisecond):
				return 0, errors.New("connection refused")
			case clock.after(1200 * time.Millisecond):
				return 9, nil // a later revision counts too
			}
			return 7, nil
		},
	}
	got := converge(revs, 8, start, 5*time.Second, clock.now, clock.sleep)
	assert.Equal(t, []time.Duration{0, 300 * time.Millisecond, 1200 * time.Millisecond}, got)
	assert.False(t, convergedWithin(got, time.Second), "node 3 took 1.2 s")
	assert.True(t, convergedWithin(got, 1500*time.Millisecond))
	assert.Equal(t, 1200*time.Millisecond, clock.t.Sub(start), "polling stops once every node has it")

	clock.t = start
	got = converge(revs[:1:1], 8, start, time.Second, clock.now, clock.sleep)
	assert.Equal(t, []time.Duration{0}, got)

	// A node that never gets there is reported as such, and polling ends
	// at giveUp.
	clock.t = start
	never := func() (int64, error) { return 7, nil }
	got = converge([]func() (int64, error){revs[0], never}, 8, start, 2*time.Second, clock.now, clock.sleep)
	assert.Equal(t, []time.Duration{0, -1}, got)
	assert.False(t, convergedWithin(got, time.Hour))
	assert.Equal(t, 2*time.Second, clock.t.Sub(start))
	assert.False(t, convergedWithin(nil, time.Second), "no node is no convergence")
}

func TestChangeDocument(t *testing.T) {
	doc, ok := changeDocument(string(rules.Demo()))
	require.True(t, ok, "the demo definitions have the banner the scenario changes")
	assert.Contains(t, doc, bannerAfter)
	assert.NotContains(t, doc, bannerBefore)
	_, err := rules.Compile([]byte(doc))
	require.NoError(t, err, "the changed document is valid")

	_, ok = changeDocument("blocks: []\n")
	assert.False(t, ok)
}

func TestCountEvents(t *testing.T) {
	primary := &profile.Profile{
		Behaviour: []profile.Counter{
			{Type: profile.PageView, Key: profile.Key{URL: "/demo/"}, Total: 4},
			{Type: profile.PageView, Key: profile.Key{URL: "/demo/c/toys"}, Total: 2},
			{Type: profile.CartAdd, Key: profile.Key{SKU: "sneaker-air-45"}, Total: 3},
			{Type: profile.Purchase, Total: 9}, // orders are counted from Orders
		},
		Orders: []profile.Order{{ID: "k6-1-1"}, {ID: "k6-1-7"}},
	}
	season := &profile.Profile{Behaviour: []profile.Counter{
		{Type: profile.PageView, Key: profile.Key{URL: "/demo/p/playmobil-sint"}, Total: 1},
		{Type: profile.CartAdd, Key: profile.Key{SKU: "playmobil-sint"}, Total: 5},
		{Type: profile.Purchase, Total: 2},
	}}
	c := countEvents(&profile.Snapshot{Primary: primary, Seasonal: []*profile.Profile{season, nil}})
	assert.Equal(t, eventCounts{views: 7, carts: 8, orders: 2}, c)

	assert.True(t, c.covers(eventCounts{views: 7, carts: 8, orders: 2}))
	assert.True(t, c.covers(eventCounts{views: 6, carts: 8, orders: 2}), "stored but not acknowledged is no loss")
	for _, acked := range []eventCounts{{views: 8, carts: 8, orders: 2}, {views: 7, carts: 9, orders: 2}, {views: 7, carts: 8, orders: 3}} {
		assert.False(t, c.covers(acked), "%v acknowledged, %v stored", acked, c)
	}
}

// clusterSummary is a k6 summary export as mixed.js over three nodes
// writes it: 20 s at 1500/s.
const clusterSummary = `{"metrics":{
 "http_req_duration{scenario:shop}":{"med":0.5,"p(95)":2.0,"p(99)":4.0},
 "http_req_duration{node:n1}":{"med":0.4,"p(95)":1.5,"p(99)":3.0},
 "http_req_duration{node:n2}":{"med":0.5,"p(95)":2.0,"p(99)":4.0},
 "http_req_duration{node:n3}":{"med":0.6,"p(95)":2.5,"p(99)":5.0,"thresholds":{"p(99)<15":false}},
 "http_reqs{node:n1}":{"count":10000},
 "http_reqs{node:n2}":{"count":10000},
 "http_reqs{node:n3}":{"count":10000},
 "http_req_failed":{"value":0},
 "checks":{"passes":60000,"fails":0},
 "views_acknowledged":{"count":30000},
 "carts_acknowledged":{"count":7500},
 "orders_acknowledged":{"count":1500},
 "dropped_iterations":{"count":12}
}}`

func clusterFixture() (*clusterResult, []clusterNode) {
	res := &clusterResult{duration: 20, fromRev: 1, toRev: 2,
		converged: []time.Duration{0, 300 * time.Millisecond, 450 * time.Millisecond},
		servedNew: []bool{true, true, true},
		stored:    eventCounts{views: 30000, carts: 7500, orders: 1500}}
	nodes := make([]clusterNode, 3)
	for i := range nodes {
		nodes[i].before = nodeCounters{cpu: 10}
		nodes[i].after = nodeCounters{cpu: 12} // 2 s of CPU for 10,000 requests
	}
	return res, nodes
}

func TestClusterRows(t *testing.T) {
	res, nodes := clusterFixture()
	rows, err := res.rows([]byte(clusterSummary), nodes, 1500, true)
	require.NoError(t, err)
	require.Len(t, rows, 4)
	for i, r := range rows[:3] {
		assert.Equal(t, 500.0, r.rps, "node %d", i+1)
		assert.False(t, r.failed, "node %d", i+1)
		assert.Contains(t, r.note, "CPU 0.200 ms/request")
	}
	assert.Equal(t, 3.0, rows[0].p99)
	assert.Equal(t, 5.0, rows[2].p99)
	assert.Contains(t, rows[1].note, "new revision after 0.300 s")
	all := rows[3]
	assert.Equal(t, 1500.0, all.rps)
	assert.Equal(t, 4.0, all.p99)
	assert.False(t, all.failed, all.note)
	assert.Contains(t, all.note, "revision 1→2 on every node within 1s: met")
	assert.Contains(t, all.note, "acknowledged 30000 page views, 7500 cart adds, 1500 orders; found 30000 page views")
	assert.Contains(t, all.note, "12 requests not sent: the generator fell behind the rate")

	var b strings.Builder
	assert.False(t, report(&b, rows, options{generator: "k6"}))
	assert.Contains(t, b.String(), "| mixed shop traffic, 3 nodes on a Redis Cluster: node 2 | k6 | 8 @ 1500/s | 500 | — | 0.500 | 2.000 | 4.000 | 0.000% |")
	b.Reset()
	res.stored.profiles = 1000
	res.print(&b)
	assert.Contains(t, b.String(), "reported by node 1 0.000 s, node 2 0.300 s, node 3 0.450 s (limit 1s: met)")
	assert.Contains(t, b.String(), "found in the cluster 30000 page views, 7500 cart adds, 1500 orders (in 1000 profiles): met")

	for name, spoil := range map[string]func(*clusterResult, []clusterNode){
		"a node slower than the limit":  func(r *clusterResult, _ []clusterNode) { r.converged[2] = 1100 * time.Millisecond },
		"a node that never converged":   func(r *clusterResult, _ []clusterNode) { r.converged[1] = -1 },
		"a node serving the old banner": func(r *clusterResult, _ []clusterNode) { r.servedNew[0] = false },
		"an acknowledged view lost":     func(r *clusterResult, _ []clusterNode) { r.stored.views-- },
		"an acknowledged order lost":    func(r *clusterResult, _ []clusterNode) { r.stored.orders-- },
		"a degraded decide":             func(_ *clusterResult, n []clusterNode) { n[1].after.degraded = 1 },
		"a store error":                 func(_ *clusterResult, n []clusterNode) { n[2].after.storeErrors = 2 },
	} {
		t.Run(name, func(t *testing.T) {
			res, nodes := clusterFixture()
			spoil(res, nodes)
			rows, err := res.rows([]byte(clusterSummary), nodes, 1500, true)
			require.NoError(t, err)
			assert.True(t, rows[3].failed, rows[3].note)
			var b strings.Builder
			assert.True(t, report(&b, rows, options{generator: "k6"}), "the run fails")
		})
	}
	t.Run("a k6 threshold failed", func(t *testing.T) {
		res, nodes := clusterFixture()
		rows, err := res.rows([]byte(clusterSummary), nodes, 1500, false)
		require.NoError(t, err)
		assert.True(t, rows[3].failed)
		assert.Contains(t, rows[3].note, "thresholds FAILED")
	})
	t.Run("no requests reached a node", func(t *testing.T) {
		res, nodes := clusterFixture()
		rows, err := res.rows([]byte(strings.Replace(clusterSummary, `"http_reqs{node:n3}":{"count":10000}`, `"http_reqs{node:n3}":{"count":0}`, 1)), nodes, 1500, true)
		require.NoError(t, err)
		assert.True(t, rows[2].failed)
		assert.True(t, rows[3].failed)
	})
}

func TestInfoFields(t *testing.T) {
	f := infoFields("# Stats\r\ntotal_commands_processed:1234\r\ninstantaneous_ops_per_sec:5\r\n# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nrole:master\r\n")
	assert.Equal(t, 1234.0, f["total_commands_processed"])
	assert.Equal(t, 3.75, f["used_cpu_sys"]+f["used_cpu_user"])
	_, ok := f["role"]
	assert.False(t, ok, "only numbers")
}

// TestStartRedisCluster starts the scenario's Redis Cluster for real: three
// masters on free ports that route every slot, and the statistics the
// runner reads from each.
func TestStartRedisCluster(t *testing.T) {
	bin, ps := redisProcs(t)
	addrs, err := startRedisCluster(ps, bin, t.TempDir(), 0)
	require.NoError(t, err)
	require.Len(t, addrs, 3)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	masters := map[string]bool{}
	for i := range 30 {
		key := "k" + string(rune('a'+i))
		require.NoError(t, cc.Set(ctx, key, "v", time.Minute).Err())
		c, err := cc.MasterForKey(ctx, key)
		require.NoError(t, err)
		masters[c.Options().Addr] = true
	}
	assert.Len(t, masters, 3, "the slots are spread over the three masters")
	for _, a := range addrs {
		s, err := readRedisStats(ctx, a)
		require.NoError(t, err)
		assert.Positive(t, s.commands, a)
		assert.Positive(t, s.memory, a)
	}
}

// redisProcs returns redis-server and the processes a test starts, stopped
// when it ends.
func redisProcs(t *testing.T) (string, *procs) {
	t.Helper()
	bin, err := findOrInstall("redis-server", "redis-server")
	require.NoError(t, err)
	ps := &procs{}
	t.Cleanup(ps.stop)
	return bin, ps
}
