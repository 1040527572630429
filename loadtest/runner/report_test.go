package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMedianRow(t *testing.T) {
	rs := []row{
		{key: "decide_warm", generator: "wrk", conns: "64", rps: 70000, p99: 2.0},
		{key: "decide_warm", generator: "wrk", conns: "64", rps: 60000, p99: 3.0, errors: 0.01, failed: true},
		{key: "decide_warm", generator: "wrk", conns: "64", rps: 65000, p99: 1.0},
	}
	m := medianRow(rs)
	assert.Equal(t, 65000.0, m.rps)
	assert.Equal(t, 2.0, m.p99)
	assert.True(t, m.failed, "a failed round fails the row")
	assert.Equal(t, 0.01, m.errors, "the worst round's errors")
	assert.Contains(t, m.note, "rps 60000–70000 over 3 rounds")
}

func TestReportGoalsAndFailure(t *testing.T) {
	rows := []row{
		{key: "hello", name: "hello", generator: "wrk", conns: "64", rps: 100000},
		{key: "decide_warm", name: "warm", generator: "wrk", conns: "64", rps: 55000},
		{key: "decide_cold", name: "cold", generator: "wrk", conns: "64", rps: 23000},
		{key: "hello", name: "hello", generator: "wrk", conns: "8", rps: 100000},
		{key: "decide_warm", name: "warm", generator: "wrk", conns: "8", rps: 60000, p99: 0.4},
		{key: "decide_cold", name: "cold", generator: "wrk", conns: "8", rps: 30000, p99: 1.6},
		{key: "events", name: "events", generator: "wrk", conns: "64", rps: 6000, perReq: 5},
		{key: "mixed", name: "mixed", generator: "k6", conns: "8 @ 2000/s", rps: 2000},
	}
	var b strings.Builder
	o := options{generator: "wrk,k6", rounds: 3}
	assert.False(t, report(&b, rows, o))
	out := b.String()
	assert.Contains(t, out, "| warm | wrk | 64 | 55000 | 0.55 |")
	assert.Contains(t, out, "| mixed | k6 | 8 @ 2000/s | 2000 | — |", "no ratio for a fixed rate")
	assert.Contains(t, out, "warm decide ≥ 0.60 of hello: 0.55 — NOT met")
	assert.Contains(t, out, "cold decide ≥ 0.22 of hello: 0.23 — met")
	assert.Contains(t, out, "warm decide p99 at 8 connections ≤ 0.5 ms: 0.4 ms — met")
	assert.Contains(t, out, "cold decide p99 at 8 connections ≤ 1.5 ms: 1.6 ms — NOT met")
	assert.Contains(t, out, "events ≥ 25,000/s into Redis, nothing lost: 30000 events/s — met")
	assert.Contains(t, out, "cold decide p99 at 8 connections ≤ 1.0 ms (issue 18): 1.6 ms — NOT met")
	assert.Contains(t, out, "cold decide ≥ 0.35 of hello and ≥ the go-redis anchor's 0 (issue 18): 0.23 — NOT met", "no anchor row: its figure is 0")

	rows[6].failed, rows[6].note = true, "10 batches acknowledged over all runs, 9 found stored"
	b.Reset()
	assert.True(t, report(&b, rows, o), "a lost event fails the run")
	assert.Contains(t, b.String(), "FAILED 10 batches acknowledged")
	assert.Contains(t, b.String(), "nothing lost: 30000 events/s — NOT met")
}

func TestRoundRatios(t *testing.T) {
	hello := []row{{rps: 100000}, {rps: 50000}, {rps: 80000}}
	cold := []row{{rps: 36000}, {rps: 17000}, {rps: 28000}}
	assert.Equal(t, "ratio per round 0.360, 0.340, 0.350 (median 0.350)", roundRatios(cold, hello))
	assert.Empty(t, roundRatios(cold[:1], hello[:1]), "one round says nothing more than the table")
	assert.Empty(t, roundRatios(cold, hello[:2]))
}
