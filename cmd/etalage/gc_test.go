package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/etalage/etalage/edge"
	"github.com/stretchr/testify/assert"
)

// TestTuneGC: serve's collector goal and memory limit, and the environment
// variables that override them.
func TestTuneGC(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

	tuneGC(env(nil), 256<<20)
	assert.Equal(t, gcPercent, debug.SetGCPercent(100))
	assert.Equal(t, edge.MemoryLimit(256<<20), debug.SetMemoryLimit(math.MaxInt64))

	tuneGC(env(map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}), 256<<20)
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC set: left as the runtime read it")
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT set: left alone")

	tuneGC(env(nil), 0)
	assert.Equal(t, gcPercent, debug.SetGCPercent(100))
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64), "no cache, no limit")
}
