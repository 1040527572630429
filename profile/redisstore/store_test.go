package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/etalage/etalage/profile/storetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openURL(t *testing.T, url string, opts redisstore.Options) *redisstore.Store {
	st, err := redisstore.Open(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformanceSingle(t *testing.T) {
	addr := redistest.Server(t)
	db := 0
	storetest.Run(t, func(t *testing.T) profile.Store {
		db++ // a fresh database per subtest: the suite expects an empty store
		url := "redis://" + addr + "/" + itoa(db%16)
		opts, err := redis.ParseURL(url)
		require.NoError(t, err)
		c := redis.NewClient(opts)
		require.NoError(t, c.FlushDB(context.Background()).Err())
		c.Close()
		// Test timeouts: the suite's subject is not deadlines.
		return listed(t, openURL(t, url, redistest.Options()), redis.NewClient(opts), "etl")
	})
}

// listedStore is a store whose keys the conformance suite may list
// (storetest.KeyLister), read with a client of its own.
type listedStore struct {
	*redisstore.Store
	raw    redis.UniversalClient
	prefix string
}

func listed(t *testing.T, st *redisstore.Store, raw redis.UniversalClient, prefix string) *listedStore {
	t.Cleanup(func() { raw.Close() })
	return &listedStore{Store: st, raw: raw, prefix: prefix}
}

// ProfileKeys scans every master for the keys of pid's hash tag.
func (l *listedStore) ProfileKeys(ctx context.Context, pid string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	each := func(c *redis.Client) error {
		iter := c.Scan(ctx, 0, l.prefix+":{"+pid+"}*", 1000).Iterator()
		for iter.Next(ctx) {
			at, err := c.Do(ctx, "PEXPIRETIME", iter.Val()).Int64()
			switch {
			case err != nil:
				return err
			case at == -2: // expired meanwhile
			case at == -1:
				out[iter.Val()] = time.Time{}
			default:
				out[iter.Val()] = time.UnixMilli(at)
			}
		}
		return iter.Err()
	}
	if cc, ok := l.raw.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		return out, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock() // one scan at a time: they fill one map
			defer mu.Unlock()
			return each(c)
		})
	}
	return out, each(l.raw.(*redis.Client))
}

func TestConformanceCluster(t *testing.T) {
	addrs := redistest.Cluster(t)
	n := 0
	storetest.Run(t, func(t *testing.T) profile.Store {
		n++ // a fresh key prefix per subtest: a cluster has one database
		// and an emptied one: a sample sizes the whole database.
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		require.NoError(t, cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
			return c.FlushDB(ctx).Err()
		}))
		cc.Close()
		o := redistest.Options()
		o.Prefix = "t" + itoa(n)
		st, err := redisstore.Open(context.Background(), "redis-cluster://"+strings.Join(addrs, ","), o)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return listed(t, st, redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}), "t"+itoa(n))
	})
}

func itoa(i int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i/10)) + string(rune('0'+i%10)))
}

func TestKilledAndRestarted(t *testing.T) {
	p := redistest.StartServer(t)
	st := openURL(t, "redis://"+p.Addr+"/0", redisstore.Options{})
	ctx := context.Background()
	pid := profile.NewID()
	require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("x")}}))
	p.Kill()
	_, err := st.Get(ctx, pid, nil)
	require.ErrorIs(t, err, profile.ErrUnavailable)
	require.ErrorIs(t, st.Put(ctx, pid, []profile.Write{{Expect: 1, Version: 2, Data: []byte("y")}}), profile.ErrUnavailable)
	_, err = st.Lookup(ctx, "email:x")
	require.ErrorIs(t, err, profile.ErrUnavailable)
	p.Restart()
	require.Eventually(t, func() bool { return st.Ping(ctx) == nil }, 5*time.Second, 50*time.Millisecond)
	recs, err := st.Get(ctx, pid, nil)
	require.NoError(t, err)
	assert.Zero(t, recs[0].Version, "nothing was persisted")
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, addrs, master, user, pass string
		db                             int
		cluster                        bool
	}{
		{url: "redis://localhost:6379/2", addrs: "localhost:6379", db: 2},
		{url: "redis://:secret@h:1/0", addrs: "h:1", pass: "secret"},
		{url: "redis-cluster://a:1,b:2,c:3", addrs: "a:1,b:2,c:3", cluster: true},
		{url: "redis-cluster://u:p@a:1,b:2", addrs: "a:1,b:2", user: "u", pass: "p", cluster: true},
		{url: "redis-sentinel://mymaster@s1:26379,s2:26379/1", addrs: "s1:26379,s2:26379", master: "mymaster", db: 1},
		{url: "redis-sentinel://u:p@mymaster@s1:26379", addrs: "s1:26379", master: "mymaster", user: "u", pass: "p"},
	} {
		o, err := redisstore.ParseURL(tc.url)
		require.NoError(t, err, tc.url)
		assert.Equal(t, tc.addrs, strings.Join(o.Addrs, ","), tc.url)
		assert.Equal(t, tc.master, o.MasterName, tc.url)
		assert.Equal(t, tc.db, o.DB, tc.url)
		assert.Equal(t, tc.user, o.Username, tc.url)
		assert.Equal(t, tc.pass, o.Password, tc.url)
		assert.Equal(t, tc.cluster, o.IsClusterMode, tc.url)
	}
	for _, tc := range []struct {
		url                 string
		dial, read, written time.Duration
	}{
		{url: "redis://h:1/0?read_timeout=3s&dial_timeout=2s&write_timeout=1s", dial: 2 * time.Second, read: 3 * time.Second, written: time.Second},
		{url: "redis-cluster://a:1,b:2?dial_timeout=2s&read_timeout=1.5", dial: 2 * time.Second, read: 1500 * time.Millisecond},
		{url: "redis-sentinel://m@s1:26379/1?write_timeout=750ms", written: 750 * time.Millisecond},
	} {
		o, err := redisstore.ParseURL(tc.url)
		require.NoError(t, err, tc.url)
		assert.Equal(t, tc.dial, o.DialTimeout, tc.url)
		assert.Equal(t, tc.read, o.ReadTimeout, tc.url)
		assert.Equal(t, tc.written, o.WriteTimeout, tc.url)
	}
	for _, bad := range []string{"localhost:6379", "http://x:1", "redis-cluster://", "redis-cluster://a", "redis-cluster://a:1/3", "redis-sentinel://s1:1", "redis-sentinel://m@h:1/x",
		"redis-cluster://a:1?pool=3", "redis-cluster://a:1?read_timeout=soon", "redis-cluster://a:1?read_timeout=-1s", "redis-sentinel://m@h:1?dial_timeout=0"} {
		_, err := redisstore.ParseURL(bad)
		assert.Error(t, err, bad)
	}
}

// On a cluster a Put's links live in other slots than its record and take
// its expiry after the script that writes it. A caller's deadline that
// ends in between must not turn the written record into an error (the
// caller would store its events again: a degraded decide's page view is
// retried through /v1/events): the Put answers nil by its deadline, and
// the links follow.
func TestClusterPutStandsWhileItsLinksWait(t *testing.T) {
	addrs := redistest.Cluster(t)
	ctx := context.Background()
	st, err := redisstore.Open(ctx, "redis-cluster://"+strings.Join(addrs, ","), redistest.Options())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cc.Close() })

	pid := profile.NewID()
	recMaster, err := cc.MasterForKey(ctx, "etl:{"+pid+"}")
	require.NoError(t, err)
	var ident string
	var linkMaster *redis.Client
	for i := 0; linkMaster == nil; i++ {
		ident = "email:" + strconv.Itoa(i)
		m, err := cc.MasterForKey(ctx, "etl:id:"+ident)
		require.NoError(t, err)
		if m.Options().Addr != recMaster.Options().Addr {
			linkMaster = m
		}
	}
	_, err = st.Link(ctx, ident, pid, time.Minute)
	require.NoError(t, err)
	links := []string{ident}
	require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour, Links: links}}))

	// Writes on the link's master wait 3 s; the record's master answers.
	const pause = 3 * time.Second
	require.NoError(t, linkMaster.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err())
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	began := time.Now()
	err = st.Put(dctx, pid, []profile.Write{{Expect: 1, Version: 2, Data: []byte("p"), TTL: 2 * time.Hour, Links: links}})
	took := time.Since(began)
	require.NoError(t, err, "the record is written: the Put stands")
	assert.Less(t, took, pause, "the Put answered by its deadline, not after the links")
	recs, err := st.Get(ctx, pid, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), recs[0].Version)

	recAt, err := cc.Do(ctx, "PEXPIRETIME", "etl:{"+pid+"}").Int64()
	require.NoError(t, err)
	assert.Eventually(t, func() bool {
		at, err := cc.Do(ctx, "PEXPIRETIME", "etl:id:"+ident).Int64()
		return err == nil && at == recAt
	}, 10*time.Second, 50*time.Millisecond, "the link takes the record's expiry once its master takes writes")
}

// TestOpenOutlastsASlowRedis: a Redis that answers slower than the read
// timeout (here: busy for a second in DEBUG SLEEP) while a node starts
// does not stop the node starting; and the read timeout a redis:// URL
// names is the one the store reads with.
func TestOpenOutlastsASlowRedis(t *testing.T) {
	p := redistest.StartServer(t, "--enable-debug-command", "yes")
	c := redis.NewClient(&redis.Options{Addr: p.Addr})
	t.Cleanup(func() { c.Close() })
	sleep := func() chan error {
		done := make(chan error, 1)
		go func() { done <- c.Do(context.Background(), "DEBUG", "SLEEP", "1").Err() }()
		time.Sleep(100 * time.Millisecond)
		return done
	}
	done := sleep()
	st, err := redisstore.Open(context.Background(), "redis://"+p.Addr+"/0", redisstore.Options{})
	require.NoError(t, err, "the first PING is asked again until Redis answers")
	st.Close()
	require.NoError(t, <-done)

	st, err = redisstore.Open(context.Background(), "redis://"+p.Addr+"/0?read_timeout=5s", redisstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	done = sleep()
	_, err = st.Get(context.Background(), profile.NewID(), nil)
	require.NoError(t, err, "the URL's 5 s read timeout outlasts a 1 s stall")
	require.NoError(t, <-done)
}
