package main

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
)

// row is one line of the table: one target, generator and connection count.
type row struct {
	key, name, generator, conns string
	perReq                      int
	rps, p50, p95, p99          float64 // p* in milliseconds
	errors                      float64 // fraction of requests
	ok                          int64   // requests answered 2xx
	failed                      bool
	note                        string
}

func keyOf(r row) string { return r.key + "/" + r.generator + "/" + r.conns }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// medianRow folds the rounds of one target into one row of medians; it
// fails when any round failed.
func medianRow(rs []row) row {
	out := rs[0]
	pick := func(f func(row) float64) float64 {
		xs := make([]float64, 0, len(rs))
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	out.rps = pick(func(r row) float64 { return r.rps })
	out.p50 = pick(func(r row) float64 { return r.p50 })
	out.p95 = pick(func(r row) float64 { return r.p95 })
	out.p99 = pick(func(r row) float64 { return r.p99 })
	out.errors = pick(func(r row) float64 { return r.errors })
	var notes []string
	if len(rs) > 1 {
		lo, hi := rs[0].rps, rs[0].rps
		for _, r := range rs {
			lo, hi = min(lo, r.rps), max(hi, r.rps)
		}
		notes = append(notes, fmt.Sprintf("rps %.0f–%.0f over %d rounds", lo, hi, len(rs)))
	}
	for _, r := range rs {
		out.failed = out.failed || r.failed
		out.errors = max(out.errors, r.errors)
		if r.note != "" {
			notes = append(notes, r.note)
		}
	}
	out.note = strings.Join(notes, "; ")
	return out
}

// roundRatios tells each round's ratio to the hello baseline of the same
// round (the machine's speed drifts between rounds: a ratio within one
// round is the steadier figure) and their median.
func roundRatios(rs, hello []row) string {
	if len(rs) < 2 || len(rs) != len(hello) {
		return ""
	}
	var parts []string
	var xs []float64
	for i := range rs {
		if hello[i].rps <= 0 {
			return ""
		}
		x := rs[i].rps / hello[i].rps
		xs = append(xs, x)
		parts = append(parts, fmt.Sprintf("%.3f", x))
	}
	return fmt.Sprintf("ratio per round %s (median %.3f)", strings.Join(parts, ", "), median(xs))
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

// report prints the table and the goals, and tells whether anything failed.
func report(w io.Writer, rows []row, o options) (failed bool) {
	fmt.Fprintf(w, "\netalage load test, %s: servers pinned to CPU 0, load generator and Redis on CPU 1 (%d CPUs); wrk rows are medians of %d interleaved rounds of %s\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), o.rounds, o.duration)
	fmt.Fprintln(w, "| target | generator | conns | rps | ratio to hello | p50 ms | p95 ms | p99 ms | errors | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	base := map[string]float64{}
	for _, r := range rows {
		if r.key == "hello" {
			base[r.generator+"/"+r.conns] = r.rps
		}
	}
	find := func(key, gen, conns string) (row, bool) {
		for _, r := range rows {
			if r.key == key && r.generator == gen && r.conns == conns {
				return r, true
			}
		}
		return row{}, false
	}
	for _, r := range rows {
		ratio := "—" // a fixed arrival rate says nothing about throughput
		if b := base[r.generator+"/"+r.conns]; b > 0 && r.generator == "wrk" {
			ratio = fmt.Sprintf("%.2f", r.rps/b)
		}
		name := r.name
		if r.perReq > 0 {
			name += fmt.Sprintf(" (%.0f events/s)", r.rps*float64(r.perReq))
		}
		note := r.note
		if r.failed && !strings.Contains(note, "FAIL") {
			note = strings.TrimSpace("FAILED " + note)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %.3f | %.3f | %.3f | %.3f%% | %s |\n",
			name, r.generator, r.conns, r.rps, ratio, r.p50, r.p95, r.p99, 100*r.errors, note)
		failed = failed || r.failed
	}
	if !o.uses("wrk") {
		return failed
	}
	fmt.Fprintln(w, "\nGoals (load-test issue; wrk, as the anchors were measured):")
	goal := func(what string, got float64, ok bool, unit string) {
		verdict := "met"
		if !ok {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "- %s: %s%s — %s\n", what, trim(got), unit, verdict)
	}
	hello64 := base["wrk/64"]
	if r, ok := find("decide_warm", "wrk", "64"); ok && hello64 > 0 {
		goal("warm decide ≥ 0.60 of hello", r.rps/hello64, r.rps/hello64 >= 0.60, "")
	}
	if r, ok := find("decide_warm", "wrk", "8"); ok {
		goal("warm decide p99 at 8 connections ≤ 0.5 ms", r.p99, r.p99 <= 0.5, " ms")
	}
	if r, ok := find("decide_cold", "wrk", "64"); ok && hello64 > 0 {
		goal("cold decide ≥ 0.22 of hello", r.rps/hello64, r.rps/hello64 >= 0.22, "")
	}
	if r, ok := find("decide_cold", "wrk", "8"); ok {
		goal("cold decide p99 at 8 connections ≤ 1.5 ms", r.p99, r.p99 <= 1.5, " ms")
	}
	if r, ok := find("decide_cold", "wrk", "64"); ok && hello64 > 0 {
		anchor, _ := find("hello_redis", "wrk", "64")
		goal("cold decide ≥ 0.35 of hello and ≥ the go-redis anchor's "+trim(anchor.rps/hello64)+" (issue 18)",
			r.rps/hello64, r.rps/hello64 >= 0.35 && r.rps >= anchor.rps, "")
	}
	if r, ok := find("decide_cold", "wrk", "8"); ok {
		goal("cold decide p99 at 8 connections ≤ 1.0 ms (issue 18)", r.p99, r.p99 <= 1.0, " ms")
	}
	if r, ok := find("events", "wrk", "64"); ok {
		goal("events ≥ 25,000/s into Redis, nothing lost", r.rps*5, r.rps*5 >= 25000 && !r.failed, " events/s")
	}
	return failed
}

func trim(f float64) string {
	if f >= 100 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.3g", f)
}
