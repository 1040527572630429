package embeddedstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/etalage/etalage/profile"
	bolt "go.etcd.io/bbolt"
)

var _ profile.TriggerStore = (*Store)(nil)

// The trigger schedule: "due" maps pid → due time and "dueidx" orders
// (due time, pid) for claims; "lease" maps a claimed pid → lease end;
// "pending" maps hook \x00 pid → since, "pendidx" orders hook \x00 (since,
// pid); "tstats" holds hook \x00 count name → value. One bbolt transaction
// makes a claim atomic, as the Redis script does.
var (
	bucketDue     = []byte("due")
	bucketDueIdx  = []byte("dueidx")
	bucketLease   = []byte("lease")
	bucketPending = []byte("pending")
	bucketPendIdx = []byte("pendidx")
	bucketTStats  = []byte("tstats")
)

var triggerBuckets = [][]byte{bucketDue, bucketDueIdx, bucketLease, bucketPending, bucketPendIdx, bucketTStats}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func msOf(t time.Time) uint64 { return uint64(max(t.UnixMilli(), 0)) }

func idxKey(at uint64, pid string) []byte { return append(u64(at), pid...) }

// schedule sets pid's due time to at unless it is earlier already (or
// replaces it when force).
func schedule(tx *bolt.Tx, pid string, at uint64, force bool) error {
	due, idx := tx.Bucket(bucketDue), tx.Bucket(bucketDueIdx)
	if cur := due.Get([]byte(pid)); cur != nil {
		old := binary.BigEndian.Uint64(cur)
		if old <= at && !force {
			return nil
		}
		if err := idx.Delete(idxKey(old, pid)); err != nil {
			return err
		}
	}
	if err := due.Put([]byte(pid), u64(at)); err != nil {
		return err
	}
	return idx.Put(idxKey(at, pid), nil)
}

func unschedule(tx *bolt.Tx, pid string) error {
	due := tx.Bucket(bucketDue)
	cur := due.Get([]byte(pid))
	if cur == nil {
		return nil
	}
	if err := tx.Bucket(bucketDueIdx).Delete(idxKey(binary.BigEndian.Uint64(cur), pid)); err != nil {
		return err
	}
	return due.Delete([]byte(pid))
}

// ScheduleAt makes pid due at t unless it is due earlier.
func (s *Store) ScheduleAt(ctx context.Context, pid string, t time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return schedule(tx, pid, msOf(t), false) })
	return wrap("schedule", err)
}

// ClaimDue leases up to n due profiles in one transaction.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]profile.Claim, error) {
	if n <= 0 {
		return nil, nil
	}
	until := now.Add(lease).Truncate(time.Millisecond)
	nowMS := msOf(now)
	var out []profile.Claim
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		leases := tx.Bucket(bucketLease)
		var expired []string
		leases.ForEach(func(k, v []byte) error {
			if binary.BigEndian.Uint64(v) <= nowMS {
				expired = append(expired, string(k))
			}
			return nil
		})
		for _, pid := range expired {
			if err := leases.Delete([]byte(pid)); err != nil {
				return err
			}
			if err := schedule(tx, pid, nowMS, false); err != nil {
				return err
			}
		}
		c := tx.Bucket(bucketDueIdx).Cursor()
		var take []string
		for k, _ := c.First(); k != nil && len(take) < n; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[:8]) > nowMS {
				break
			}
			pid := string(k[8:])
			if leases.Get([]byte(pid)) != nil {
				continue
			}
			take = append(take, pid)
		}
		for _, pid := range take {
			if err := unschedule(tx, pid); err != nil {
				return err
			}
			if err := leases.Put([]byte(pid), u64(msOf(until))); err != nil {
				return err
			}
			out = append(out, profile.Claim{PID: pid, Until: until})
		}
		return nil
	})
	return out, wrap("claim due profiles", err)
}

// Release drops the lease when it is still c's and schedules next.
func (s *Store) Release(ctx context.Context, c profile.Claim, next time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLease)
		if v := leases.Get([]byte(c.PID)); v != nil && binary.BigEndian.Uint64(v) == msOf(c.Until) {
			if err := leases.Delete([]byte(c.PID)); err != nil {
				return err
			}
		}
		if next.IsZero() {
			return nil
		}
		return schedule(tx, c.PID, msOf(next), false)
	})
	return wrap("release claim", err)
}

func pendKey(hook, pid string) []byte { return []byte(hook + "\x00" + pid) }

// SetPending records the oldest undelivered change of pid for hook.
func (s *Store) SetPending(ctx context.Context, hook, pid string, since time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		pend, idx := tx.Bucket(bucketPending), tx.Bucket(bucketPendIdx)
		k := pendKey(hook, pid)
		if cur := pend.Get(k); cur != nil {
			old := append([]byte(hook+"\x00"), idxKey(binary.BigEndian.Uint64(cur), pid)...)
			if err := idx.Delete(old); err != nil {
				return err
			}
			if err := pend.Delete(k); err != nil {
				return err
			}
		}
		if since.IsZero() {
			return nil
		}
		at := msOf(since)
		if err := pend.Put(k, u64(at)); err != nil {
			return err
		}
		return idx.Put(append([]byte(hook+"\x00"), idxKey(at, pid)...), nil)
	})
	return wrap("set pending", err)
}

// CountTrigger adds n to one of hook's counts.
func (s *Store) CountTrigger(ctx context.Context, hook, what string, n int64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTStats)
		k := []byte(hook + "\x00" + what)
		cur, _ := strconv.ParseInt(string(b.Get(k)), 10, 64)
		return b.Put(k, []byte(strconv.FormatInt(cur+n, 10)))
	})
	return wrap("count delivery", err)
}

// TriggerError records hook's last delivery error.
func (s *Store) TriggerError(ctx context.Context, hook, msg string, at time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTStats)
		if err := b.Put([]byte(hook+"\x00error"), []byte(msg)); err != nil {
			return err
		}
		return b.Put([]byte(hook+"\x00error_at"), []byte(strconv.FormatInt(at.UnixMilli(), 10)))
	})
	return wrap("record delivery error", err)
}

// TriggerCounts returns hook's counts. Pending counts the contacts with
// undelivered changes by walking hook's part of the index.
func (s *Store) TriggerCounts(ctx context.Context, hook string) (profile.TriggerCounts, error) {
	var out profile.TriggerCounts
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := []byte(hook + "\x00")
		c := tx.Bucket(bucketPendIdx).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if out.Pending == 0 {
				out.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(k[len(prefix) : len(prefix)+8])))
			}
			out.Pending++
		}
		b := tx.Bucket(bucketTStats)
		num := func(what string) int64 {
			n, _ := strconv.ParseInt(string(b.Get([]byte(hook+"\x00"+what))), 10, 64)
			return n
		}
		out.Delivered, out.Failed, out.Retries = num("delivered"), num("failed"), num("retries")
		out.LastError = string(b.Get([]byte(hook + "\x00error")))
		if at := num("error_at"); at != 0 {
			out.LastAt = time.UnixMilli(at)
		}
		return nil
	})
	return out, wrap("read delivery counts", err)
}
