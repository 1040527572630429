package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/rules"
	"github.com/redis/go-redis/v9"
)

// frozenNow is the clock every node of the load tests runs on (--now): in
// the Sinterklaas season's collect window of the demo definitions.
const frozenNow = "2026-11-24T12:00:00Z"

const apiKey = "loadtest-api-key-0123456789abcdef"

// visitorKind is one kind of visitor the memory measurement creates
// through the public API.
type visitorKind struct {
	name string
	// create makes one visitor of this kind (i numbers them) and returns
	// its visitor value.
	create func(base string, i int) (string, error)
}

var visitorKinds = []visitorKind{
	{"anonymous, one page view", createAnonymous},
	{"returning: 40 views of 20 URLs over 14 days, fields, a cart, an order", createReturning},
	{"known contact: returning + proven e-mail and customer id, e-mail opens, a Sinterklaas profile (toy views, a gift order)", createKnown},
}

// createAnonymous is a visitor who sees one page and leaves: the browser
// sends its page view. Through /v1/events, which acknowledges only what it
// stored (a decide under a busy store may answer degraded, storing nothing).
func createAnonymous(base string, _ int) (v string, err error) {
	err = retry(func() (err error) {
		v, err = postForCookie(base+"/v1/events", `{"events":[{"type":"page_view","url":"/demo/c/sneakers"}]}`, 202)
		return err
	})
	return v, err
}

// retry calls f again after a 503 (nothing was stored: the node ran out
// of its deadline on a busy machine), as the snippet does, five times at
// most.
func retry(f func() error) error {
	var err error
	for i := range 5 {
		if err = f(); err == nil || !strings.Contains(err.Error(), ": 503 ") {
			return err
		}
		time.Sleep(time.Duration(i+1) * 200 * time.Millisecond)
	}
	return err
}

// returningEvents is the history of a returning visitor, sent by the shop's
// backend with past times (only an API-key caller may): 40 product views
// over 20 URLs, two weeks up to now, a newsletter form with fields, a cart
// add and an order — the typical profile of profile's TestTypicalProfileSize.
func returningEvents(i int) []string {
	now, _ := time.Parse(time.RFC3339, frozenNow)
	start := now.Add(-14 * 24 * time.Hour)
	var evs []string
	for j := range 40 {
		ts := start.Add(time.Duration(j) * 8 * time.Hour).Unix()
		evs = append(evs, fmt.Sprintf(`{"type":"page_view","url":"/demo/p/product-%d","category":"sneakers","ts":%d}`, j%20, ts))
	}
	ts := now.Add(-time.Hour).Unix()
	evs = append(evs,
		fmt.Sprintf(`{"type":"form_submit","form":"newsletter","fields":{"first_name":"Anna","city":"Utrecht","shoe_size":%d},"ts":%d}`, 38+i%10, ts),
		fmt.Sprintf(`{"type":"cart_add","sku":"sneaker-air-45","category":"sneakers","price":129.95,"ts":%d}`, ts),
		fmt.Sprintf(`{"type":"purchase","order_id":"mem-%d","items":[{"sku":"sneaker-court","category":"sneakers","price":89.95}],"ts":%d}`, i, ts))
	return evs
}

func createReturning(base string, i int) (string, error) {
	v, err := createAnonymous(base, i)
	if err != nil {
		return "", err
	}
	return v, postTrusted(base+"/v1/events", `{"visitor":"`+v+`","events":[`+strings.Join(returningEvents(i), ",")+`]}`)
}

// createKnown is a returning visitor who bought as a customer: the shop
// backend proves the e-mail address and customer id, newsletters were
// opened and clicked, and Sinterklaas gifts (toys) browsed and bought in
// the season's collect window.
func createKnown(base string, i int) (string, error) {
	v, err := createAnonymous(base, i)
	if err != nil {
		return "", err
	}
	now, _ := time.Parse(time.RFC3339, frozenNow)
	evs := returningEvents(i + 1_000_000)
	for j := range 3 {
		ts := now.Add(-time.Duration(j+1) * 24 * time.Hour).Unix()
		evs = append(evs,
			fmt.Sprintf(`{"type":"email_open","campaign":"sint-%d","ts":%d}`, j, ts),
			fmt.Sprintf(`{"type":"page_view","url":"/demo/p/playmobil-%d","category":"toys","ts":%d}`, j, ts))
	}
	ts := now.Add(-2 * time.Hour).Unix()
	evs = append(evs,
		fmt.Sprintf(`{"type":"email_click","campaign":"sint-0","url":"/demo/c/toys","ts":%d}`, ts),
		fmt.Sprintf(`{"type":"purchase","order_id":"mem-sint-%d","items":[{"sku":"playmobil-sint","category":"toys","price":39.99,"gift":true}],"ts":%d}`, i, ts),
		fmt.Sprintf(`{"type":"identify","email":"contact-%d@example.nl","customer_id":"c-%d","fields":{"first_name":"Sam"}}`, i, i))
	return v, postTrusted(base+"/v1/events", `{"visitor":"`+v+`","events":[`+strings.Join(evs, ",")+`]}`)
}

func postTrusted(url, body string) error {
	return retry(func() error {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", apiKey)
		return do(req, 202, nil)
	})
}

// keyClass names what a Redis key of the profile store holds.
func keyClass(key string) string {
	rest, ok := strings.CutPrefix(key, "etl:")
	switch {
	case !ok:
		return "other"
	case strings.HasPrefix(rest, "id:"):
		return "link"
	case strings.HasPrefix(rest, "claims:"):
		return "claim"
	case !strings.HasPrefix(rest, "{"):
		return "shared"
	}
	_, after, ok := strings.Cut(rest, "}")
	switch {
	case !ok:
		return "other"
	case after == "":
		return "primary"
	case after == ":seasons":
		return "season index"
	case strings.HasPrefix(after, ":s:"):
		return "seasonal"
	}
	return "shared"
}

// keyOwner returns the profile id a hash-tagged key belongs to, or "".
func keyOwner(key string) string {
	rest, ok := strings.CutPrefix(key, "etl:{")
	if !ok {
		return ""
	}
	pid, _, ok := strings.Cut(rest, "}")
	if !ok || !profile.IsID(pid) {
		return ""
	}
	return pid
}

// kindMemory is what one kind of visitor costs.
type kindMemory struct {
	name     string
	visitors int
	keys     map[string]*keyBytes // by keyClass
	used     float64              // INFO used_memory grown while they were created
	cache    float64              // sum of edge.CacheCost
	pids     []string             // the visitors' profile ids, as their visitor values name them
}

type keyBytes struct{ keys, usage, value int64 }

func (k *kindMemory) add(class string, usage, value int64) {
	if k.keys[class] == nil {
		k.keys[class] = &keyBytes{}
	}
	b := k.keys[class]
	b.keys++
	b.usage += usage
	b.value += value
}

func (k *kindMemory) usage() int64 {
	var n int64
	for _, b := range k.keys {
		n += b.usage
	}
	return n
}

// memoryMain is `./loadtest/run.sh memory`: it starts a throwaway Redis
// and one etalage node on it, creates visitors of each kind through the
// public API, and measures what each costs: MEMORY USAGE of every key
// (primary and seasonal profiles, their index, identity links and claims),
// the growth of Redis' used_memory while they were created, and the cache
// cost a node charges for each (edge.CacheCost).
func memoryMain(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	n := fs.Int("n", 2000, "visitors of each kind")
	keep := fs.Bool("keep", false, "keep the work directory")
	fs.Parse(args)
	redisBin, err := findOrInstall("redis-server", "redis-server")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "etalage-memory-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if err := build(work, [2]string{"etalage", "./cmd/etalage"}); err != nil {
		return err
	}
	var ps procs
	defer ps.stop()
	redisAddr := freeAddr()
	_, port, _ := net.SplitHostPort(redisAddr)
	if err := ps.start(pin(1, redisBin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work), filepath.Join(work, "redis.log")); err != nil {
		return err
	}
	if err := waitRedis(redisAddr); err != nil {
		return err
	}
	pub, adm := freeAddr(), freeAddr()
	if err := ps.start(pin(0, filepath.Join(work, "etalage"), "serve", "--listen", pub, "--admin-listen", adm,
		"--store", "redis://"+redisAddr+"/0", "--secret", "loadtest-secret-0123456789abcdef", "--api-key", apiKey,
		"--dev", "--cookie-secure=false", "--rate-limit", "0", "--log-format", "json", "--demo", "false", "--now", frozenNow),
		filepath.Join(work, "etalage.log")); err != nil {
		return err
	}
	if err := waitHTTP("http://" + adm + "/readyz"); err != nil {
		return err
	}
	m := memoryRun{base: "http://" + pub, admin: "http://" + adm, redis: redisAddr, n: *n}
	kinds, err := m.measure(context.Background())
	if err != nil {
		return err
	}
	printMemory(os.Stdout, kinds, *n)
	return nil
}

type memoryRun struct {
	base, admin, redis string
	n                  int
}

func (m *memoryRun) measure(ctx context.Context) ([]*kindMemory, error) {
	rc := redis.NewClient(&redis.Options{Addr: m.redis})
	defer rc.Close()
	used := func() (float64, error) {
		info, err := rc.Info(ctx, "memory").Result()
		return infoFields(info)["used_memory"], err
	}
	owner := map[string]*kindMemory{} // profile id → its kind
	var kinds []*kindMemory
	for _, k := range visitorKinds {
		km := &kindMemory{name: k.name, visitors: m.n, keys: map[string]*keyBytes{}}
		kinds = append(kinds, km)
		before, err := used()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "memory: creating %d visitors: %s\n", m.n, k.name)
		visitors := make([]string, m.n)
		if err := parallel(m.n, func(i int) (err error) {
			visitors[i], err = k.create(m.base, i)
			return err
		}); err != nil {
			return nil, err
		}
		after, err := used()
		if err != nil {
			return nil, err
		}
		km.used = after - before
		// A visitor value is the profile id and its signature; the admin
		// API names the profile that holds the visitor now (a proven
		// identify may have moved it to the contact's).
		var mu sync.Mutex
		if err := parallel(m.n, func(i int) error {
			var p struct{ ID string }
			req, _ := http.NewRequest("GET", m.admin+"/admin/v1/profiles/"+visitors[i], nil)
			if err := do(req, 200, &p); err != nil {
				return err
			}
			pid, _, _ := strings.Cut(visitors[i], ".")
			mu.Lock()
			owner[p.ID], owner[pid] = km, km
			km.pids = append(km.pids, pid)
			mu.Unlock()
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := m.keys(ctx, rc, owner); err != nil {
		return nil, err
	}
	return kinds, m.cache(ctx, kinds)
}

// keys measures every key with MEMORY USAGE (all of a key's elements,
// SAMPLES 0) and charges it to the kind of visitor it belongs to: by the
// profile id in its hash tag, or for links and claims by the profile id
// they name.
func (m *memoryRun) keys(ctx context.Context, rc *redis.Client, owner map[string]*kindMemory) error {
	var cursor uint64
	for {
		keys, next, err := rc.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return err
		}
		pipe := rc.Pipeline()
		usage := make([]*redis.IntCmd, len(keys))
		types := make([]*redis.StatusCmd, len(keys))
		for i, k := range keys {
			usage[i] = pipe.MemoryUsage(ctx, k, 0)
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("MEMORY USAGE: %w", err)
		}
		for i, k := range keys {
			class := keyClass(k)
			pid := keyOwner(k)
			var value int64
			switch types[i].Val() {
			case "string":
				s, err := rc.Get(ctx, k).Result()
				if err != nil {
					return err
				}
				value = int64(len(s))
				if class == "link" {
					pid = s
				}
			case "set":
				members, err := rc.SMembers(ctx, k).Result()
				if err != nil {
					return err
				}
				for _, mem := range members {
					value += int64(len(mem))
					if owner[mem] != nil {
						pid = mem
					}
				}
			}
			if km := owner[pid]; km != nil {
				km.add(class, usage[i].Val(), value)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// cache loads every visitor's profile as a node does and sums the cache
// cost it would be charged.
func (m *memoryRun) cache(ctx context.Context, kinds []*kindMemory) error {
	var cur struct{ Document string }
	req, _ := http.NewRequest("GET", m.admin+"/admin/v1/definitions", nil)
	if err := do(req, 200, &cur); err != nil {
		return err
	}
	set, err := rules.Compile([]byte(cur.Document))
	if err != nil {
		return err
	}
	pol := set.Policy(profile.Policy{})
	st, err := redisstore.Open(ctx, "redis://"+m.redis+"/0", redisstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	now, _ := time.Parse(time.RFC3339, frozenNow)
	svc := profile.NewService(st, profile.Options{Now: func() time.Time { return now }})
	for _, km := range kinds {
		for _, pid := range km.pids {
			snap, err := svc.Load(ctx, pid, pol)
			if err != nil {
				return err
			}
			km.cache += float64(edge.CacheCost(snap))
		}
	}
	return nil
}

var keyClasses = []string{"primary", "seasonal", "season index", "link", "claim", "shared", "other"}

// printMemory prints, per kind of visitor, the bytes per visitor of each
// key class (MEMORY USAGE, and the stored value's length), their sum, the
// used_memory growth per visitor and the cache cost per visitor.
func printMemory(w io.Writer, kinds []*kindMemory, n int) {
	fmt.Fprintf(w, "\netalage memory per visitor, %s: %d visitors of each kind created through the public API on one Redis\n\n", time.Now().UTC().Format(time.RFC3339), n)
	fmt.Fprintln(w, "| visitor | keys per visitor | MEMORY USAGE per visitor, bytes | of which | stored values, bytes | used_memory growth per visitor, bytes | cache (edge.CacheCost) per visitor, bytes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, k := range kinds {
		var keys, value int64
		var parts []string
		classes := make([]string, 0, len(k.keys))
		for c := range k.keys {
			classes = append(classes, c)
		}
		sort.Slice(classes, func(i, j int) bool { return classIndex(classes[i]) < classIndex(classes[j]) })
		for _, c := range classes {
			b := k.keys[c]
			keys += b.keys
			value += b.value
			parts = append(parts, fmt.Sprintf("%s %.0f (%.2f keys)", c, float64(b.usage)/float64(k.visitors), float64(b.keys)/float64(k.visitors)))
		}
		fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %.0f | %.0f | %.0f |\n", k.name, float64(keys)/float64(k.visitors),
			float64(k.usage())/float64(k.visitors), strings.Join(parts, "; "), float64(value)/float64(k.visitors),
			k.used/float64(k.visitors), k.cache/float64(k.visitors))
	}
}

func classIndex(c string) int {
	for i, k := range keyClasses {
		if k == c {
			return i
		}
	}
	return len(keyClasses)
}
