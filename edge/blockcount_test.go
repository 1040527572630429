package edge

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testBlocks are blocks of two slots, as a decision names them.
var testBlocks = []*rules.Block{{ID: "hero-a", Slot: "home-hero"}, {ID: "hero-b", Slot: "home-hero"}, {ID: "banner", Slot: "banner-top"}}

// TestBlockCounterConcurrent: decides of many visitors on many goroutines,
// with flushes running meanwhile, lose no served block and list each
// visitor once per block and flush.
func TestBlockCounterConcurrent(t *testing.T) {
	c := newBlockCounter()
	const workers, visitors, rounds = 16, 50, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var taken [][]profile.BlockCount
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got := c.take()
			mu.Lock()
			taken = append(taken, got)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for v := range visitors {
					pid := "w" + strconv.Itoa(w) + "v" + strconv.Itoa(v)
					hero := testBlocks[v%2]
					day := "2026-11-24"
					if r%4 == 3 {
						day = "2026-11-25"
					}
					c.served(day, pid, []rules.Choice{{Slot: "home-hero", Block: hero}, {Slot: "banner-top", Block: testBlocks[2]}, {Slot: "home-picks"}})
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	taken = append(taken, c.take())

	served := map[dayBlock]int64{}
	seen := map[dayBlock]map[string]bool{}
	for _, counts := range taken {
		for _, bc := range counts {
			k := dayBlock{bc.Day, bc.Block}
			served[k] += bc.Served
			inFlush := map[string]bool{}
			for _, v := range bc.Visitors {
				assert.False(t, inFlush[v], "%s listed twice for %v in one flush", v, k)
				inFlush[v] = true
				if seen[k] == nil {
					seen[k] = map[string]bool{}
				}
				seen[k][v] = true
			}
		}
	}
	perVisitor := map[string]int64{"2026-11-24": 15, "2026-11-25": 5} // rounds per day, per visitor
	for _, day := range []string{"2026-11-24", "2026-11-25"} {
		n := perVisitor[day]
		assert.Equal(t, n*workers*visitors/2, served[dayBlock{day, "hero-a"}], day)
		assert.Equal(t, n*workers*visitors/2, served[dayBlock{day, "hero-b"}], day)
		assert.Equal(t, n*workers*visitors, served[dayBlock{day, "banner"}], day)
		assert.Len(t, seen[dayBlock{day, "hero-a"}], workers*visitors/2, day)
		assert.Len(t, seen[dayBlock{day, "banner"}], workers*visitors, day)
	}
	assert.Len(t, served, 6, "a slot without a block is not counted")
}

// TestBlockCounterNoAllocs: counting a returning visitor's decide, and
// asking for today, allocate nothing.
func TestBlockCounterNoAllocs(t *testing.T) {
	c := newBlockCounter()
	choices := []rules.Choice{{Slot: "home-hero", Block: testBlocks[0]}, {Slot: "banner-top", Block: testBlocks[2]}}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	ams, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	c.served(c.dayOf(now, ams, true), "visitor-1", choices)
	allocs := testing.AllocsPerRun(1000, func() {
		c.served(c.dayOf(now, ams, true), "visitor-1", choices)
	})
	assert.Zero(t, allocs)
	// After a flush the buffers are reused: a visitor of the next window
	// allocates nothing either, once the maps have grown.
	c.take()
	c.take()
	allocs = testing.AllocsPerRun(100, func() {
		c.served(c.dayOf(now, ams, true), "visitor-1", choices)
	})
	assert.Zero(t, allocs)
}

func TestBlockCounterDays(t *testing.T) {
	c := newBlockCounter()
	ams, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	cases := []struct {
		t    time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2026, 11, 24, 22, 59, 0, 0, time.UTC), ams, "2026-11-24"},
		{time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC), ams, "2026-11-25"}, // midnight in Amsterdam
		{time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC), time.UTC, "2026-11-24"},
		{time.Date(2026, 3, 29, 22, 30, 0, 0, time.UTC), ams, "2026-03-30"}, // the night summer time begins
		{time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), ams, "2026-11-24"}, // back to a cached day
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, c.dayOf(tc.t, tc.loc, true), "%v in %v", tc.t, tc.loc)
	}
	assert.Equal(t, "2026-11-20", c.dayOf(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), ams, false))
	assert.Equal(t, "2026-11-24", c.today.Load().day, "a past click's day does not replace today's")
}

// failingStore refuses AddBlockCounts while down.
type failingStore struct {
	profile.Store
	mu   sync.Mutex
	down bool
}

func (f *failingStore) AddBlockCounts(ctx context.Context, counts []profile.BlockCount) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return profile.ErrUnavailable
	}
	return f.Store.AddBlockCounts(ctx, counts)
}

// TestBlockCounterFlushKeepsWhatTheStoreRefused: counts a flush could not
// store go with the next one; nothing is lost or counted twice.
func TestBlockCounterFlushKeepsWhatTheStoreRefused(t *testing.T) {
	ctx := context.Background()
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	fs := &failingStore{Store: st, down: true}
	svc := profile.NewService(fs, profile.Options{})
	c := newBlockCounter()
	hero := []rules.Choice{{Slot: "home-hero", Block: testBlocks[0]}}
	c.served("2026-11-24", "v1", hero)
	c.served("2026-11-24", "v1", hero)
	c.click("2026-11-24", "hero-a")
	require.ErrorIs(t, c.flush(ctx, svc), profile.ErrUnavailable)
	c.served("2026-11-24", "v2", hero)
	c.served("2026-11-24", "v1", hero)
	require.ErrorIs(t, c.flush(ctx, svc), profile.ErrUnavailable)
	fs.down = false
	c.served("2026-11-24", "v3", hero)
	require.NoError(t, c.flush(ctx, svc))
	require.NoError(t, c.flush(ctx, svc), "an empty flush")
	rows, err := svc.BlockCounts(ctx, []string{"2026-11-24"})
	require.NoError(t, err)
	assert.Equal(t, []profile.BlockDay{{Day: "2026-11-24", Block: "hero-a", Served: 5, Clicks: 1, Visitors: 3}}, rows)
}

// TestBlockCounterBounded: past maxHits entries a shard still counts what
// it serves (not to whom) and asks for an early flush at half of it.
func TestBlockCounterBounded(t *testing.T) {
	c := newBlockCounter()
	hero := []rules.Choice{{Slot: "home-hero", Block: testBlocks[0]}}
	// Ids ending in the same byte fall in one shard.
	for i := range maxHits + 10 {
		c.served("2026-11-24", strconv.Itoa(i)+"x", hero)
	}
	select {
	case <-c.kick:
	default:
		t.Fatal("no early flush asked for")
	}
	got := c.take()
	require.Len(t, got, 1)
	assert.Equal(t, int64(maxHits+10), got[0].Served)
	assert.Len(t, got[0].Visitors, maxHits)
	assert.Empty(t, c.take())
}

func TestBlockCounterCarryBounded(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	svc := profile.NewService(&failingStore{Store: st, down: true}, profile.Options{})
	c := newBlockCounter()
	c.carry = []profile.BlockCount{{Day: "2026-11-24", Block: "a", Served: maxCarry + 1, Visitors: make([]string, maxCarry+1)}}
	require.Error(t, c.flush(context.Background(), svc))
	require.Len(t, c.carry, 1)
	assert.Nil(t, c.carry[0].Visitors, "past the bound only the counts are kept")
	assert.Equal(t, int64(maxCarry+1), c.carry[0].Served)
	assert.True(t, errors.Is(c.flush(context.Background(), svc), profile.ErrUnavailable))
}

// BenchmarkBlockCounterServed: what counting adds to a returning
// visitor's decide of three slots (the day lookup and one shard's map).
func BenchmarkBlockCounterServed(b *testing.B) {
	c := newBlockCounter()
	choices := []rules.Choice{{Slot: "home-hero", Block: testBlocks[0]}, {Slot: "banner-top", Block: testBlocks[2]}, {Slot: "home-picks", Block: testBlocks[1]}}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	pid := "0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	for b.Loop() {
		c.served(c.dayOf(now, time.UTC, true), pid, choices)
	}
}
