package embeddedstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etalage/etalage/profile"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var _ profile.Store = (*Store)(nil)

var (
	bucketRecords = []byte("records")   // pid \x00 season → version | expiry | data
	bucketLinks   = []byte("links")     // ident → version(0) | expiry | pid
	bucketMeta    = []byte("meta")      // "doc", "rev", "file:<digest>" → revision
	bucketRevs    = []byte("revisions") // revision (8 bytes, big endian) → JSON revision
	bucketClaims  = []byte("claims")    // ident NUL pid → version(0) | expiry
	bucketTallies = []byte("tallies")   // name \x00 field → int64, big-endian
	bucketBlocks  = []byte("blocks")    // day \x00 block → served | clicks (int64, big-endian) | visitor sketch
)

// sweepEvery is how often expired records and links are deleted; reads
// treat them as absent meanwhile.
const sweepEvery = time.Minute

// Store is a profile.Store on a bbolt file.
type Store struct {
	db   *bolt.DB
	now  func() time.Time
	stop chan struct{}
	wg   sync.WaitGroup

	queue      chan *putReq // profile writes waiting for the writer (writer.go)
	commitTime atomic.Int64 // moving average of a commit's duration, in ns
	closing    sync.RWMutex // held to enqueue; Close takes it to set closed
	closed     bool
	// beforeCommit, when set (by tests), runs inside every batch's
	// transaction before it commits: a slow disk.
	beforeCommit func()
}

// Open opens or creates the store in dir (<dir>/profiles.db).
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "profiles.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: the store is in use by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range append([][]byte{bucketRecords, bucketLinks, bucketMeta, bucketRevs, bucketClaims, bucketTallies, bucketBlocks}, triggerBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now, stop: make(chan struct{}), queue: make(chan *putReq, maxQueue)}
	s.wg.Add(2)
	go s.sweeper()
	go s.writer()
	return s, nil
}

func recordKey(pid, season string) []byte {
	k := make([]byte, 0, len(pid)+1+len(season))
	k = append(k, pid...)
	k = append(k, 0)
	return append(k, season...)
}

// encode lays a value out as version | expiry (unix nanos, 0 = never) | data.
func encode(version uint64, ttl time.Duration, now time.Time, data []byte) []byte {
	b := make([]byte, 16, 16+len(data))
	binary.BigEndian.PutUint64(b, version)
	if ttl > 0 {
		binary.BigEndian.PutUint64(b[8:], uint64(now.Add(ttl).UnixNano()))
	}
	return append(b, data...)
}

// decode returns the version and data of a stored value, or ok false when
// it is absent or expired.
func decode(v []byte, now time.Time) (uint64, []byte, bool) {
	if len(v) < 16 {
		return 0, nil, false
	}
	if exp := binary.BigEndian.Uint64(v[8:16]); exp != 0 && int64(exp) <= now.UnixNano() {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(v[:8]), v[16:], true
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%s: %w: %w", op, profile.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Get reads the primary record and the named seasonal records.
func (s *Store) Get(ctx context.Context, pid string, seasons []string) ([]profile.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get profile: %w: %w", profile.ErrUnavailable, err)
	}
	out := make([]profile.Record, 1+len(seasons))
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for i := range out {
			season := ""
			if i > 0 {
				season = seasons[i-1]
			}
			if ver, data, ok := decode(b.Get(recordKey(pid, season)), now); ok {
				out[i] = profile.Record{Data: bytes.Clone(data), Version: ver}
			}
		}
		return nil
	})
	return out, wrap("get profile", err)
}

// expireLinks gives each link that maps to pid the expiry exp (as stored in
// a value: unix nanos, zero for none).
func expireLinks(b *bolt.Bucket, links []string, pid string, exp []byte, now time.Time) error {
	for _, l := range links {
		v := b.Get([]byte(l))
		if _, cur, ok := decode(v, now); !ok || string(cur) != pid {
			continue
		}
		nv := bytes.Clone(v)
		copy(nv[8:16], exp)
		if err := b.Put([]byte(l), nv); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes every record of pid. Like every write below it goes
// through the writer: within ctx's deadline, an error means not deleted.
func (s *Store) Delete(ctx context.Context, pid string) error {
	prefix := recordKey(pid, "")
	return s.update(ctx, "delete profile", func(tx *bolt.Tx, _ time.Time) error {
		return deletePrefix(tx.Bucket(bucketRecords), prefix)
	})
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Link maps ident to pid unless it is mapped already; an existing link
// keeps its expiry.
func (s *Store) Link(ctx context.Context, ident, pid string, ttl time.Duration) (string, error) {
	var got string
	err := s.update(ctx, "link", func(tx *bolt.Tx, now time.Time) error {
		b := tx.Bucket(bucketLinks)
		if _, cur, ok := decode(b.Get([]byte(ident)), now); ok {
			got = string(cur)
			return nil
		}
		got = pid
		return b.Put([]byte(ident), encode(0, ttl, now, []byte(pid)))
	})
	if err != nil {
		return "", err
	}
	return got, nil
}

// Lookup returns the pid ident maps to.
func (s *Store) Lookup(ctx context.Context, ident string) (string, error) {
	var pid string
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		_, cur, ok := decode(tx.Bucket(bucketLinks).Get([]byte(ident)), now)
		if !ok {
			return profile.ErrNotFound
		}
		pid = string(cur)
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		return "", profile.ErrNotFound
	}
	return pid, wrap("lookup", err)
}

// Unlink removes ident's link if it maps to pid.
func (s *Store) Unlink(ctx context.Context, ident, pid string) error {
	return s.update(ctx, "unlink", func(tx *bolt.Tx, now time.Time) error {
		b := tx.Bucket(bucketLinks)
		if _, cur, ok := decode(b.Get([]byte(ident)), now); ok && string(cur) == pid {
			return b.Delete([]byte(ident))
		}
		return nil
	})
}

// AddClaimant notes pid under ident; a note's expiry only grows.
func (s *Store) AddClaimant(ctx context.Context, ident, pid string, ttl time.Duration) error {
	k := append(append([]byte(ident), 0), pid...)
	return s.update(ctx, "claim", func(tx *bolt.Tx, now time.Time) error {
		b := tx.Bucket(bucketClaims)
		v := encode(0, ttl, now, nil)
		if old := b.Get(k); len(old) >= 16 && bytes.Compare(old[8:16], v[8:16]) > 0 {
			return nil
		}
		return b.Put(k, v)
	})
}

// Claimants returns the live notes of ident.
func (s *Store) Claimants(ctx context.Context, ident string) ([]string, error) {
	now := s.now()
	prefix := append([]byte(ident), 0)
	var pids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketClaims).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if _, _, ok := decode(v, now); ok {
				pids = append(pids, string(k[len(prefix):]))
			}
		}
		return nil
	})
	return pids, wrap("claims", err)
}

// DropClaimant deletes pid's note of ident, or every note of ident.
func (s *Store) DropClaimant(ctx context.Context, ident, pid string) error {
	prefix := append([]byte(ident), 0)
	return s.update(ctx, "unclaim", func(tx *bolt.Tx, _ time.Time) error {
		b := tx.Bucket(bucketClaims)
		if pid != "" {
			return b.Delete(append(prefix, pid...))
		}
		return deletePrefix(b, prefix)
	})
}

// Scan lists primary profiles in key order; the cursor is the last pid
// returned.
func (s *Store) Scan(ctx context.Context, cursor string, count int) ([]string, string, error) {
	if count <= 0 {
		count = 100
	}
	now := s.now()
	var pids []string
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		var k, v []byte
		if cursor == "" {
			k, v = c.First()
		} else {
			k, v = c.Seek(recordKey(cursor, "\xff"))
		}
		for ; k != nil; k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || i != len(k)-1 {
				continue // a seasonal record
			}
			if _, _, ok := decode(v, now); !ok {
				continue
			}
			if len(pids) == count {
				next = pids[len(pids)-1]
				return nil
			}
			pids = append(pids, string(k[:i]))
		}
		return nil
	})
	return pids, next, wrap("scan", err)
}

// sampleClusters is how many random points a Sample starts from; it walks
// n/sampleClusters profiles onward from each.
const sampleClusters = 32

// Sample draws profiles by seeking to random points of the key space and
// walking onward. Profile ids are random, so the order of keys is
// independent of what the profiles hold: the profiles after a random point
// are a uniform sample, and how much of the id space they span estimates
// how many profiles there are (a Poisson process of known rate).
func (s *Store) Sample(ctx context.Context, n int) (profile.Sample, error) {
	if n <= 0 {
		n = 1000
	}
	now := s.now()
	var out profile.Sample
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		live := func(k, v []byte) (string, bool) {
			i := bytes.IndexByte(k, 0)
			if i < 0 || i != len(k)-1 {
				return "", false
			}
			if _, _, ok := decode(v, now); !ok {
				return "", false
			}
			return string(k[:i]), true
		}
		// A store that holds no more than n profiles is answered exactly.
		for k, v := c.First(); k != nil && len(out.PIDs) <= n; k, v = c.Next() {
			if pid, ok := live(k, v); ok {
				out.PIDs = append(out.PIDs, pid)
			}
		}
		if len(out.PIDs) <= n {
			out.Exact, out.Population = true, float64(len(out.PIDs))
			return nil
		}
		out.PIDs = out.PIDs[:0]
		per := max(1, n/sampleClusters)
		span := 0.0
		for range sampleClusters {
			var seed [16]byte
			rand.Read(seed[:])
			start := hex.EncodeToString(seed[:])
			u := idPosition(start)
			k, v := c.Seek([]byte(start))
			last, got, wrapped := u, 0, false
			for got < per {
				if k == nil {
					if wrapped {
						break
					}
					wrapped = true
					k, v = c.First()
					continue
				}
				if pid, ok := live(k, v); ok {
					out.PIDs = append(out.PIDs, pid)
					last = idPosition(pid)
					got++
				}
				k, v = c.Next()
			}
			d := last - u
			if d < 0 || (wrapped && d == 0) {
				d++
			}
			span += d
		}
		r := float64(len(out.PIDs))
		if r > 1 && span > 0 {
			out.Population = (r - 1) / span
			out.RelErr = 1 / math.Sqrt(r)
		}
		return nil
	})
	return out, wrap("sample profiles", err)
}

// idPosition places a hex profile id in [0, 1) by its first 16 digits.
func idPosition(pid string) float64 {
	if len(pid) < 16 {
		return 0
	}
	u, err := strconv.ParseUint(pid[:16], 16, 64)
	if err != nil {
		return 0
	}
	return float64(u) / (1 << 64)
}

// Definitions returns the stored definitions document.
func (s *Store) Definitions(ctx context.Context) ([]byte, int64, error) {
	var doc []byte
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		d := b.Get([]byte("doc"))
		if d == nil {
			return profile.ErrNotFound
		}
		doc = bytes.Clone(d)
		rev, _ = strconv.ParseInt(string(b.Get([]byte("rev"))), 10, 64)
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		return nil, 0, profile.ErrNotFound
	}
	return doc, rev, wrap("read definitions", err)
}

// Revision returns the stored revision, 0 when none.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		rev, _ = strconv.ParseInt(string(tx.Bucket(bucketMeta).Get([]byte("rev"))), 10, 64)
		return nil
	})
	return rev, wrap("read revision", err)
}

// storedRevision is a kept revision as the revisions bucket holds it.
type storedRevision struct {
	Time time.Time `json:"time"`
	Note string    `json:"note,omitempty"`
	File string    `json:"file,omitempty"`
	Doc  []byte    `json:"doc"`
}

func revKey(rev int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(rev)) }

// PutDefinitions stores p.Doc as the next revision unless it is the stored
// document already, or p.Expect does not hold.
func (s *Store) PutDefinitions(ctx context.Context, p profile.DefinitionsPut) (int64, bool, error) {
	var rev int64
	created := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, rb := tx.Bucket(bucketMeta), tx.Bucket(bucketRevs)
		cur := b.Get([]byte("doc"))
		rev, _ = strconv.ParseInt(string(b.Get([]byte("rev"))), 10, 64)
		if p.Expect != profile.AnyRevision && p.Expect != rev {
			return profile.ErrConflict
		}
		if cur == nil || !bytes.Equal(cur, p.Doc) {
			if cur != nil && rb.Get(revKey(rev)) == nil {
				// A revision stored before revisions were kept: keep it
				// now, so that it can be rolled back to.
				old, _ := json.Marshal(storedRevision{Doc: cur})
				if err := rb.Put(revKey(rev), old); err != nil {
					return err
				}
			}
			rev++
			created = true
			v, err := json.Marshal(storedRevision{Time: p.Time.UTC(), Note: p.Note, File: p.File, Doc: p.Doc})
			if err != nil {
				return err
			}
			if err := rb.Put(revKey(rev), v); err != nil {
				return err
			}
			if err := b.Put([]byte("doc"), p.Doc); err != nil {
				return err
			}
			if err := b.Put([]byte("rev"), []byte(strconv.FormatInt(rev, 10))); err != nil {
				return err
			}
		}
		if p.File != "" {
			return b.Put([]byte("file:"+p.File), []byte(strconv.FormatInt(rev, 10)))
		}
		return nil
	})
	if errors.Is(err, profile.ErrConflict) {
		return rev, false, fmt.Errorf("store definitions: revision %d is current: %w", rev, profile.ErrConflict)
	}
	return rev, created, wrap("store definitions", err)
}

// DefinitionsRevisions lists kept revisions, newest first.
func (s *Store) DefinitionsRevisions(ctx context.Context, before int64, limit int) ([]profile.Revision, error) {
	if limit <= 0 {
		limit = 50
	}
	var out []profile.Revision
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRevs).Cursor()
		var k, v []byte
		if before > 0 {
			k, _ = c.Seek(revKey(before))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Last()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			var r storedRevision
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("revision %x: %w", k, err)
			}
			out = append(out, profile.Revision{Rev: int64(binary.BigEndian.Uint64(k)), Time: r.Time, Note: r.Note, File: r.File})
		}
		return nil
	})
	return out, wrap("list definitions revisions", err)
}

// DefinitionsRevision returns one kept revision with its document.
func (s *Store) DefinitionsRevision(ctx context.Context, n int64) (profile.Revision, error) {
	var out profile.Revision
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRevs).Get(revKey(n))
		if v == nil {
			return profile.ErrNotFound
		}
		var r storedRevision
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = profile.Revision{Rev: n, Time: r.Time, Note: r.Note, File: r.File, Doc: r.Doc}
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		return out, profile.ErrNotFound
	}
	return out, wrap("read definitions revision", err)
}

// FileRevision returns the revision a start-up file was applied as.
func (s *Store) FileRevision(ctx context.Context, digest string) (int64, error) {
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte("file:" + digest))
		if v == nil {
			return profile.ErrNotFound
		}
		rev, _ = strconv.ParseInt(string(v), 10, 64)
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		return 0, profile.ErrNotFound
	}
	return rev, wrap("read definitions file", err)
}

// Entry is one stored key as Dump lists it.
type Entry struct {
	Bucket  string    // "records" (pid NUL season), "links" (identifier → pid), "claims" (identifier NUL pid) or "meta"
	Key     []byte    // valid during the call only
	Expires time.Time // zero: never
	Value   []byte    // the data, without version and expiry; valid during the call only
}

// Dump calls fn for every live key of every bucket, for audits of what the
// store holds (on whom, until when) and the integrity tests.
func (s *Store) Dump(fn func(Entry) error) error {
	now := s.now()
	return s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketLinks, bucketClaims, bucketMeta} {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				e := Entry{Bucket: string(name), Key: k, Value: v}
				if !bytes.Equal(name, bucketMeta) {
					_, data, ok := decode(v, now)
					if !ok {
						return nil
					}
					e.Value = data
					if exp := binary.BigEndian.Uint64(v[8:16]); exp != 0 {
						e.Expires = time.Unix(0, int64(exp))
					}
				}
				return fn(e)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func tallyKey(name, field string) []byte {
	k := make([]byte, 0, len(name)+1+len(field))
	k = append(k, name...)
	k = append(k, 0)
	return append(k, field...)
}

func addTally(b *bolt.Bucket, t profile.Tally) error {
	k := tallyKey(t.Name, t.Field)
	var n int64
	if v := b.Get(k); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n+t.Delta)))
}

// Tallies returns the counters of counter set name.
func (s *Store) Tallies(ctx context.Context, name string) (map[string]int64, error) {
	out := map[string]int64{}
	prefix := tallyKey(name, "")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTallies).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) == 8 {
				out[string(k[len(prefix):])] = int64(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	return out, wrap("read tallies", err)
}

// Ping checks that the database is open.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.db.View(func(*bolt.Tx) error { return nil }))
}

// Close stops the sweeper and closes the file.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	s.closing.Lock()
	s.closed = true
	s.closing.Unlock()
	close(s.stop)
	s.wg.Wait()
	return s.db.Close()
}

func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Sweep deletes expired records and links, in batches so that writers are
// never blocked for long.
func (s *Store) Sweep() {
	s.sweepBlocks()
	for _, name := range [][]byte{bucketRecords, bucketLinks, bucketClaims} {
		var from []byte
		for {
			done := true
			now := s.now()
			s.db.Update(func(tx *bolt.Tx) error {
				c := tx.Bucket(name).Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				for n := 0; k != nil; n++ {
					if n == 1000 {
						from, done = bytes.Clone(k), false
						return nil
					}
					if _, _, ok := decode(v, now); !ok {
						kk := bytes.Clone(k)
						if err := c.Delete(); err != nil {
							return err
						}
						k, v = c.Seek(kk)
						continue
					}
					k, v = c.Next()
				}
				return nil
			})
			if done {
				break
			}
		}
	}
}
