package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyClass(t *testing.T) {
	pid := profile.NewID()
	for _, tc := range []struct{ key, class, owner string }{
		{"etl:{" + pid + "}", "primary", pid},
		{"etl:{" + pid + "}:s:sinterklaas", "seasonal", pid},
		{"etl:{" + pid + "}:seasons", "season index", pid},
		{"etl:id:email:sam@example.nl", "link", ""},
		{"etl:claims:email:sam@example.nl", "claim", ""},
		{"etl:defs", "shared", ""},
		{"etl:{wh}:due", "shared", ""},
		{"etl:{" + pid + "}:t:report", "shared", pid},
		{"loadtest:ready", "other", ""},
	} {
		t.Run(tc.key, func(t *testing.T) {
			assert.Equal(t, tc.class, keyClass(tc.key))
			assert.Equal(t, tc.owner, keyOwner(tc.key))
		})
	}
}

func TestRetry(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(503)
			w.Write([]byte(`{"error":{"code":"unavailable"}}`))
			return
		}
		w.WriteHeader(202)
	}))
	defer srv.Close()
	require.NoError(t, postTrusted(srv.URL+"/v1/events", `{}`), "a 503 stored nothing: sent again")
	assert.Equal(t, int32(3), calls.Load())

	calls.Store(0)
	err := retry(func() error { calls.Add(1); return errors.New("POST /v1/events: 400 bad") })
	assert.Error(t, err)
	assert.Equal(t, int32(1), calls.Load(), "other errors are not retried")
}

func TestParallel(t *testing.T) {
	var sum atomic.Int64
	require.NoError(t, parallel(100, func(i int) error { sum.Add(int64(i)); return nil }))
	assert.Equal(t, int64(4950), sum.Load())
	err := parallel(100, func(i int) error {
		if i == 42 {
			return errors.New("visitor 42")
		}
		return nil
	})
	assert.EqualError(t, err, "visitor 42")
}

// TestMemoryKeys measures keys on a real Redis: each key is charged to the
// kind of the visitor it belongs to, by its hash tag or, for links and
// claims, by the profile they name; keys of nobody's are left out.
func TestMemoryKeys(t *testing.T) {
	bin, ps := redisProcs(t)
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	require.NoError(t, ps.start(pin(0, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", dir), filepath.Join(dir, "redis.log")))
	require.NoError(t, waitRedis(addr))
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()

	anon, known, other := profile.NewID(), profile.NewID(), profile.NewID()
	record := strings.Repeat("x", 1000)
	require.NoError(t, rc.Set(ctx, "etl:{"+anon+"}", "0001"+record[:100], 0).Err())
	require.NoError(t, rc.Set(ctx, "etl:{"+known+"}", "0001"+record, 0).Err())
	require.NoError(t, rc.Set(ctx, "etl:{"+known+"}:s:sinterklaas", "0001"+record[:300], 0).Err())
	require.NoError(t, rc.SAdd(ctx, "etl:{"+known+"}:seasons", "sinterklaas").Err())
	require.NoError(t, rc.Set(ctx, "etl:id:email:sam@example.nl", known, 0).Err())
	require.NoError(t, rc.Set(ctx, "etl:id:customer:c-1", known, 0).Err())
	require.NoError(t, rc.SAdd(ctx, "etl:claims:email:anna@example.nl", anon).Err())
	require.NoError(t, rc.Set(ctx, "etl:{"+other+"}", "0001"+record, 0).Err())
	require.NoError(t, rc.Set(ctx, "etl:defs", record, 0).Err())

	a := &kindMemory{name: "anonymous", visitors: 1, keys: map[string]*keyBytes{}}
	k := &kindMemory{name: "known", visitors: 1, keys: map[string]*keyBytes{}}
	m := memoryRun{redis: addr}
	require.NoError(t, m.keys(ctx, rc, map[string]*kindMemory{anon: a, known: k}))

	assert.Equal(t, []string{"primary", "claim"}, sortedClasses(a))
	assert.Equal(t, []string{"primary", "seasonal", "season index", "link"}, sortedClasses(k))
	assert.Equal(t, int64(2), k.keys["link"].keys)
	assert.Equal(t, int64(64), k.keys["link"].value, "two profile ids")
	assert.Equal(t, int64(1004), k.keys["primary"].value)
	for _, km := range []*kindMemory{a, k} {
		for c, b := range km.keys {
			assert.Greater(t, b.usage, b.value, "%s %s: MEMORY USAGE counts the key and Redis' overhead too", km.name, c)
		}
	}
	assert.Greater(t, k.keys["primary"].usage, int64(1004))
	assert.Less(t, k.keys["primary"].usage, int64(1300))

	var b strings.Builder
	printMemory(&b, []*kindMemory{a, k}, 1)
	assert.Contains(t, b.String(), "| known | 5.00 | ")
	assert.Contains(t, b.String(), "primary ")
}

func sortedClasses(k *kindMemory) []string {
	var out []string
	for _, c := range keyClasses {
		if k.keys[c] != nil {
			out = append(out, c)
		}
	}
	return out
}
