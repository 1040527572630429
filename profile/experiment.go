package profile

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// HoldoutID is the Assignment.Experiment of the global holdout. It is not a
// valid experiment id, so it never collides with one.
const HoldoutID = "~holdout"

// Holdout variants.
const (
	VariantHoldout      = "holdout"
	VariantPersonalised = "personalised"
)

// MaxAssignments bounds the experiments a profile remembers; at the bound
// the oldest first exposure goes first.
const MaxAssignments = 16

// Assignment is a visitor's place in one experiment (or the holdout), kept
// from the first exposure on: a merge keeps the surviving profile's, and a
// later change of the weights never moves it.
type Assignment struct {
	Experiment string
	Variant    string
	At         int64 // first exposure, unix seconds
	Converted  int64 // unix seconds of the conversion; 0 until then
}

// Assignment returns the profile's assignment to experiment id, or nil.
func (p *Profile) Assignment(id string) *Assignment {
	for i := range p.Experiments {
		if p.Experiments[i].Experiment == id {
			return &p.Experiments[i]
		}
	}
	return nil
}

// Goals tells which events convert which experiment. rules.Set implements
// it; profile never imports rules.
type Goals interface {
	// Goal reports whether ev is a goal event of experiment id (HoldoutID
	// for the holdout) and the window after first exposure in which it
	// converts (0: no limit).
	Goal(id string, ev *Event) (within time.Duration, ok bool)
}

// Tally is a counter increment that a Put applies atomically with its
// records: the exposure or conversion is counted exactly when, and only
// when, the profile records it.
type Tally struct {
	Name  string // the counter set, e.g. "x:hero-test"
	Field string // the counter in it, e.g. "v:control"
	Delta int64
}

// TallyName is the counter set that holds the visitors and conversions of
// experiment id (HoldoutID for the holdout).
func TallyName(id string) string { return "x:" + id }

// VisitorsField names the counter of a variant's exposed visitors.
func VisitorsField(variant string) string { return "v:" + variant }

// ConversionsField names the counter of a variant's converted visitors.
func ConversionsField(variant string) string { return "c:" + variant }

// expose adds assignments the profile does not hold yet and returns the
// tallies of the new exposures.
func (p *Profile) expose(news []Assignment, dst []Tally) []Tally {
	for _, a := range news {
		if p.Assignment(a.Experiment) != nil {
			continue
		}
		if len(p.Experiments) >= MaxAssignments {
			oldest := 0
			for i := range p.Experiments {
				if p.Experiments[i].At < p.Experiments[oldest].At {
					oldest = i
				}
			}
			p.Experiments = append(p.Experiments[:oldest], p.Experiments[oldest+1:]...)
		}
		a.Converted = 0
		p.Experiments = append(p.Experiments, a)
		dst = append(dst, Tally{Name: TallyName(a.Experiment), Field: VisitorsField(a.Variant), Delta: 1})
	}
	return dst
}

// convert marks the assignments that ev converts and returns their tallies:
// the first goal event after the first exposure, within the goal's window,
// converts once.
func (p *Profile) convert(goals Goals, ev *Event, ts int64, dst []Tally) []Tally {
	for i := range p.Experiments {
		a := &p.Experiments[i]
		if a.Converted != 0 || ts < a.At {
			continue
		}
		within, ok := goals.Goal(a.Experiment, ev)
		if !ok || (within > 0 && ts > a.At+int64(within/time.Second)) {
			continue
		}
		a.Converted = ts
		dst = append(dst, Tally{Name: TallyName(a.Experiment), Field: ConversionsField(a.Variant), Delta: 1})
	}
	return dst
}

// mergeAssignments keeps p's assignments and adopts src's for experiments
// p was never exposed to, so a visitor who logs in keeps what they saw.
// Nothing is counted: each exposure was counted once, when it happened.
func (p *Profile) mergeAssignments(src []Assignment) {
	for _, a := range src {
		if p.Assignment(a.Experiment) == nil && len(p.Experiments) < MaxAssignments {
			p.Experiments = append(p.Experiments, a)
		}
	}
}

// Expose records the first exposure of pid to the given experiments (and
// the holdout) and counts each new one, atomically with the profile write
// that stores it. Assignments the profile already holds are left alone and
// not counted again, so concurrent decides of one new visitor on several
// nodes count them once. It returns the snapshot after the write.
func (s *Service) Expose(ctx context.Context, pid string, cached *Snapshot, news []Assignment, pol *Policy) (*Snapshot, error) {
	mu := s.stripe(pid)
	if err := mu.lock(ctx); err != nil {
		return nil, err
	}
	defer mu.unlock()
	for attempt := 0; ; attempt++ {
		base := cached
		if !base.fits(pid, pol) {
			var err error
			if base, err = s.Load(ctx, pid, pol); err != nil {
				return nil, err
			}
		}
		w := s.newWork(pid, base, pol)
		p := w.prof(0)
		w.tallies = p.expose(news, w.tallies[:0])
		if len(w.tallies) == 0 {
			return base, nil
		}
		if p.FirstSeen == 0 {
			p.touch(w.now.Unix())
		}
		w.dirty[0] = true
		writes := w.writes()
		err := s.store.Put(ctx, pid, writes)
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			cached = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record exposure: %w", err)
		}
		return w.result(writes), nil
	}
}

// Tallies reads the counters of one counter set, summed over every shard.
func (s *Service) Tallies(ctx context.Context, name string) (map[string]int64, error) {
	t, err := s.store.Tallies(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read tallies %s: %w", name, err)
	}
	return t, nil
}
