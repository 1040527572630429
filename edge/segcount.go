package edge

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// Sample sizes for estimates: the default gives a 95% interval of about
// ±2 percentage points on a segment's share; ?sample= may ask for more.
const (
	defaultSample = 2000
	maxSample     = 20000
	sampleWorkers = 8
	z95           = 1.959964
)

// countFresh is how long a finished exact count answers before a request
// starts a new one; countWait is how long a request waits for a count
// before answering 202 with its progress.
const (
	countFresh = time.Minute
	countWait  = 2 * time.Second
)

// sized is an estimated segment size with its 95% interval.
type sized struct {
	Estimate float64    `json:"estimate"`
	Interval [2]float64 `json:"interval"`
	InSample int        `json:"in_sample"`
}

// sampleInfo describes the sample an estimate came from.
type sampleInfo struct {
	Size       int     `json:"size"`
	Population float64 `json:"population"`
	Exact      bool    `json:"exact"`
	TookMS     int64   `json:"took_ms"`
}

// variant is a compiled set with the policy its profiles load with.
type variant struct {
	set *rules.Set
	pol *profile.Policy
}

// merged reports whether pid, loaded as snap, is a visitor merged into
// another profile: a forward that a store scan lists beside the profile it
// names. Scans skip it, so that a contact counts and lists once.
func merged(pid string, snap *profile.Snapshot) bool {
	return snap.Primary.ID != pid
}

// sampleSegments draws a uniform sample of stored profiles and counts, per
// variant, how many sampled profiles each segment holds. Context
// conditions are false outside a request, as in /count. Forwards drawn
// are left out of the sample, and the population shrinks by their share.
func (s *Server) sampleSegments(ctx context.Context, vs []variant, n int) (sampleInfo, profile.Sample, []map[string]int, error) {
	start := time.Now()
	smp, err := s.store.Sample(ctx, n)
	if err != nil {
		return sampleInfo{}, smp, nil, err
	}
	counts := make([]map[string]int, len(vs))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	var mu sync.Mutex
	var firstErr error
	forward := make([]bool, len(smp.PIDs))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	now := s.cfg.Now()
	for range min(sampleWorkers, len(smp.PIDs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]map[string]int, len(vs))
			for i := range local {
				local[i] = map[string]int{}
			}
			var dec rules.Decision
			for {
				i := int(next.Add(1)) - 1
				if i >= len(smp.PIDs) || ctx.Err() != nil {
					break
				}
				var snap *profile.Snapshot
				for vi, v := range vs {
					if vi == 0 || !sameSeasons(vs[vi-1].pol, v.pol) {
						var lerr error
						if snap, lerr = s.profiles.Load(ctx, smp.PIDs[i], v.pol); lerr != nil {
							mu.Lock()
							firstErr = lerr
							mu.Unlock()
							return
						}
						if vi == 0 && merged(smp.PIDs[i], snap) {
							forward[i] = true
						}
					}
					if forward[i] {
						continue
					}
					in := rules.Input{Profile: snap.Primary, Seasonal: snap.Seasonal, Now: now}
					dec.Reset()
					v.set.Decide(&in, nil, &dec)
					for _, seg := range dec.Segments {
						local[vi][seg]++
					}
				}
			}
			mu.Lock()
			for vi := range local {
				for k, c := range local[vi] {
					counts[vi][k] += c
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if n := len(smp.PIDs); n > 0 {
		live := make([]string, 0, n)
		for i, pid := range smp.PIDs {
			if !forward[i] {
				live = append(live, pid)
			}
		}
		smp.Population *= float64(len(live)) / float64(n)
		smp.PIDs = live
	}
	info := sampleInfo{Size: len(smp.PIDs), Population: math.Round(smp.Population), Exact: smp.Exact, TookMS: time.Since(start).Milliseconds()}
	return info, smp, counts, firstErr
}

func sameSeasons(a, b *profile.Policy) bool {
	if len(a.Seasons) != len(b.Seasons) {
		return false
	}
	for i := range a.Seasons {
		if a.Seasons[i].ID != b.Seasons[i].ID {
			return false
		}
	}
	return true
}

// size turns k members in a sample into an estimated count with a 95%
// interval: Wilson's interval on the share, times the population, widened
// by the population's own uncertainty (a conservative combination).
func size(k int, smp profile.Sample) sized {
	n := float64(len(smp.PIDs))
	if smp.Exact || n == 0 {
		return sized{Estimate: float64(k), Interval: [2]float64{float64(k), float64(k)}, InSample: k}
	}
	p := float64(k) / n
	z2 := z95 * z95
	den := 1 + z2/n
	center := (p + z2/(2*n)) / den
	half := z95 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	lo, hi := max(0, center-half), min(1, center+half)
	pop := smp.Population
	popLo, popHi := pop*max(0, 1-z95*smp.RelErr), pop*(1+z95*smp.RelErr)
	return sized{
		Estimate: math.Round(p * pop),
		Interval: [2]float64{math.Floor(lo * popLo), math.Ceil(hi * popHi)},
		InSample: k,
	}
}

// sampleSize reads ?sample= (or a body's sample), defaulting and capping it.
func sampleSize(v int) int {
	switch {
	case v <= 0:
		return defaultSample
	case v < 100:
		return 100
	}
	return min(v, maxSample)
}

// serveEstimate answers GET /admin/v1/segments/{id}/count?estimate=1.
func (s *Server) serveEstimate(ctx *fasthttp.RequestCtx, id string, d *defs) {
	n := 0
	if v := ctx.QueryArgs().Peek("sample"); len(v) > 0 {
		var err error
		if n, err = strconv.Atoi(string(v)); err != nil || n < 1 {
			s.writeError(ctx, errorf(ECodeInvalid, "sample: a number of profiles, like 2000"))
			return
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, smp, counts, err := s.sampleSegments(cctx, []variant{{d.set, d.policy}}, sampleSize(n))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	sz := size(counts[0][id], smp)
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"segment": id, "revision": d.rev, "estimate": sz.Estimate, "interval": sz.Interval,
		"confidence": 0.95, "in_sample": sz.InSample, "sample": info,
	})
}

// countJob is an exact count running (or run) in the background.
type countJob struct {
	segment  string
	rev      int64
	started  time.Time
	total    float64 // the estimated population, for progress
	scanned  atomic.Int64
	members  atomic.Int64
	done     chan struct{}
	finished time.Time
	err      error
}

// countJobs holds the exact counts by segment and revision.
type countJobs struct {
	mu   sync.Mutex
	jobs map[string]*countJob
}

// serveExactCount answers GET /admin/v1/segments/{id}/count: the exact size,
// counted over every stored profile in the background. A request waits up
// to countWait; a count still running answers 202 with its progress, and
// asking again answers from the same count. ?fresh=1 starts a new one.
func (s *Server) serveExactCount(ctx *fasthttp.RequestCtx, id string, d *defs) {
	key := id + "@" + strconv.FormatInt(d.rev, 10)
	fresh := len(ctx.QueryArgs().Peek("fresh")) > 0
	s.counts.mu.Lock()
	if s.counts.jobs == nil {
		s.counts.jobs = map[string]*countJob{}
	}
	j := s.counts.jobs[key]
	if j != nil && !fresh {
		select {
		case <-j.done:
			if time.Since(j.finished) > countFresh {
				j = nil
			}
		default:
		}
	}
	if j == nil || fresh {
		for k, old := range s.counts.jobs {
			select {
			case <-old.done:
				if time.Since(old.finished) > 10*countFresh {
					delete(s.counts.jobs, k)
				}
			default:
			}
		}
		j = &countJob{segment: id, rev: d.rev, started: time.Now(), done: make(chan struct{})}
		s.counts.jobs[key] = j
		s.wg.Add(1)
		go s.runCount(j, d)
	}
	s.counts.mu.Unlock()
	t := time.NewTimer(countWait)
	defer t.Stop()
	select {
	case <-j.done:
	case <-t.C:
	}
	select {
	case <-j.done:
		if j.err != nil {
			s.writeError(ctx, j.err)
			return
		}
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{
			"segment": id, "revision": j.rev, "count": j.members.Load(), "scanned": j.scanned.Load(),
			"exact": true, "counted_at": j.finished.UTC().Format(time.RFC3339),
		})
	default:
		progress := 0.0
		if j.total > 0 {
			progress = min(0.99, float64(j.scanned.Load())/j.total)
		}
		s.writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{
			"segment": id, "revision": j.rev, "status": "counting", "scanned": j.scanned.Load(),
			"members_so_far": j.members.Load(), "progress": math.Round(progress*100) / 100,
			"started_at": j.started.UTC().Format(time.RFC3339),
		})
	}
}

// runCount scans every stored profile once; it stops when the server does.
func (s *Server) runCount(j *countJob, d *defs) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		j.finished = time.Now()
		close(j.done)
	}()
	if smp, err := s.store.Sample(ctx, 100); err == nil {
		j.total = smp.Population
	}
	cursor := ""
	for {
		pids, next, err := s.profiles.Scan(ctx, cursor, 1000)
		if err != nil {
			j.err = err
			return
		}
		for _, pid := range pids {
			snap, err := s.profiles.Load(ctx, pid, d.policy)
			if err != nil {
				j.err = err
				return
			}
			if merged(pid, snap) {
				continue
			}
			in := rules.Input{Profile: snap.Primary, Seasonal: snap.Seasonal, Now: s.cfg.Now()}
			ok, err := d.set.Member(j.segment, &in)
			if err != nil {
				j.err = err
				return
			}
			j.scanned.Add(1)
			if ok {
				j.members.Add(1)
			}
		}
		if next == "" {
			return
		}
		cursor = next
	}
}

// dryRunRequest is the JSON form of POST /admin/v1/definitions/dry-run; a
// body that is not this object is the document itself.
type dryRunRequest struct {
	Document *string  `json:"document"`
	Visitor  string   `json:"visitor"`
	Sample   int      `json:"sample"`
	Slots    []string `json:"slots"`
}

// serveDryRun answers POST /admin/v1/definitions/dry-run: what applying a
// document would change, without applying it — its problems (422, as a
// PUT would), its warnings, each segment's estimated size before and after
// from one sample of stored profiles, and, for a chosen visitor, the
// segments and blocks before and after.
func (s *Server) serveDryRun(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	var req dryRunRequest
	body := ctx.PostBody()
	if err := json.Unmarshal(body, &req); err != nil || req.Document == nil {
		doc := string(body)
		req = dryRunRequest{Document: &doc, Visitor: string(ctx.QueryArgs().Peek("visitor"))}
		req.Sample, _ = strconv.Atoi(string(ctx.QueryArgs().Peek("sample")))
	}
	doc := []byte(*req.Document)
	after, err := rules.Compile(doc)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	d := s.defs.Load()
	apol := after.Policy(profile.Policy{ConsentNeeded: s.cfg.ConsentNeeded, AnonymousTTL: s.cfg.AnonymousTTL, KnownTTL: s.cfg.KnownTTL})
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, smp, counts, err := s.sampleSegments(cctx, []variant{{d.set, d.policy}, {after, apol}}, sampleSize(req.Sample))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	type segDiff struct {
		ID     string `json:"id"`
		Before *sized `json:"before"`
		After  *sized `json:"after"`
	}
	segs := []segDiff{}
	seen := map[string]bool{}
	for _, id := range after.SegmentIDs() {
		sd := segDiff{ID: id}
		a := size(counts[1][id], smp)
		sd.After = &a
		if d.set.HasSegment(id) {
			b := size(counts[0][id], smp)
			sd.Before = &b
		}
		seen[id] = true
		segs = append(segs, sd)
	}
	for _, id := range d.set.SegmentIDs() {
		if !seen[id] {
			b := size(counts[0][id], smp)
			segs = append(segs, segDiff{ID: id, Before: &b})
		}
	}
	warnings := after.Warnings()
	if warnings == nil {
		warnings = []rules.Problem{}
	}
	out := map[string]any{
		"running_revision": d.rev,
		"changed":          string(doc) != string(d.doc),
		"warnings":         warnings,
		"sample":           info,
		"segments":         segs,
	}
	if req.Visitor != "" {
		pid, err := s.resolve(cctx, req.Visitor)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		slots := req.Slots
		if len(slots) == 0 {
			slots = unionSlots(d.set.Slots(), after.Slots())
		}
		now := s.cfg.Now()
		view := func(set *rules.Set, pol *profile.Policy) (map[string]any, error) {
			snap, err := s.profiles.Load(cctx, pid, pol)
			if err != nil {
				return nil, err
			}
			in := rules.Input{Profile: snap.Primary, Seasonal: snap.Seasonal, Now: now, Context: rules.Context{Device: "desktop"}}
			return s.explain(&defs{set: set}, &in, pid, slots), nil
		}
		before, err := view(d.set, d.policy)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		afterView, err := view(after, apol)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		out["visitor"] = map[string]any{"profile": pid, "before": before, "after": afterView}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}

func unionSlots(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range [][]string{a, b} {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
