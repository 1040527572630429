package profile

import (
	"context"
	"fmt"
	"time"
)

// ReportRetention is how long a store keeps a day's block counts.
const ReportRetention = 400 * 24 * time.Hour

// BlockCount is what one node counted for one block on one day since its
// last flush: added to the store's counts, never replacing them.
type BlockCount struct {
	Day    string // YYYY-MM-DD in the shop's time zone
	Block  string
	Served int64
	Clicks int64
	// Visitors are the ids of the visitors served the block that day. The
	// store keeps only a HyperLogLog of them (Redis's PFADD: 16,384
	// registers, a standard error of 0.81%), never the ids: the report
	// holds nothing an erasure must reach.
	Visitors []string
}

// BlockDay is one row of the block report: a block's counts on one day,
// summed over every node that flushed them.
type BlockDay struct {
	Day      string
	Block    string
	Served   int64
	Clicks   int64
	Visitors int64 // distinct visitors served, estimated from the sketch
}

// AddBlockCounts adds one flush of block counts to the store.
func (s *Service) AddBlockCounts(ctx context.Context, counts []BlockCount) error {
	if len(counts) == 0 {
		return nil
	}
	if err := s.store.AddBlockCounts(ctx, counts); err != nil {
		return fmt.Errorf("add block counts: %w", err)
	}
	return nil
}

// BlockCounts reads the block counts of the given days (YYYY-MM-DD).
func (s *Service) BlockCounts(ctx context.Context, days []string) ([]BlockDay, error) {
	rows, err := s.store.BlockCounts(ctx, days)
	if err != nil {
		return nil, fmt.Errorf("read block counts: %w", err)
	}
	return rows, nil
}
