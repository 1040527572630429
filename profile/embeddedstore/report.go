package embeddedstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/etalage/etalage/profile"
	bolt "go.etcd.io/bbolt"
)

// blockKey orders a day's blocks together, and days in date order.
func blockKey(day, block string) []byte {
	k := make([]byte, 0, len(day)+1+len(block))
	k = append(k, day...)
	k = append(k, 0)
	return append(k, block...)
}

// AddBlockCounts adds the counts in one transaction.
func (s *Store) AddBlockCounts(ctx context.Context, counts []profile.BlockCount) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("add block counts: %w: %w", profile.ErrUnavailable, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlocks)
		var x hll
		for _, c := range counts {
			k := blockKey(c.Day, c.Block)
			v := b.Get(k)
			var served, clicks int64
			clear(x[:])
			if len(v) >= 16 {
				served, clicks = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
				if err := x.merge(v[16:]); err != nil {
					return fmt.Errorf("%s %s: %w", c.Day, c.Block, err)
				}
			}
			for _, id := range c.Visitors {
				x.add(id)
			}
			out := binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(served+c.Served))
			out = binary.BigEndian.AppendUint64(out, uint64(clicks+c.Clicks))
			if err := b.Put(k, x.appendTo(out)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("add block counts", err)
}

// BlockCounts reads the rows of the given days.
func (s *Store) BlockCounts(ctx context.Context, days []string) ([]profile.BlockDay, error) {
	var out []profile.BlockDay
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlocks).Cursor()
		var x hll
		for _, day := range days {
			prefix := blockKey(day, "")
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(v) < 16 {
					continue
				}
				clear(x[:])
				if err := x.merge(v[16:]); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				out = append(out, profile.BlockDay{Day: day, Block: string(k[len(prefix):]),
					Served: int64(binary.BigEndian.Uint64(v)), Clicks: int64(binary.BigEndian.Uint64(v[8:])), Visitors: x.count()})
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("read block counts", err)
	}
	return out, nil
}

// sweepBlocks deletes the days older than profile.ReportRetention (a day
// of slack for time zones).
func (s *Store) sweepBlocks() {
	cutoff := []byte(s.now().Add(-profile.ReportRetention - 24*time.Hour).UTC().Format(time.DateOnly))
	s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlocks).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}
