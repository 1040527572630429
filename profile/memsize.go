package profile

// allocOverhead is the fixed part of a small allocation's rounding, for
// cache accounting.
const allocOverhead = 16

// MemSize estimates the bytes of Go heap p holds: its one allocation with
// the rounding to Go's size classes (at most 12.5% above 1 KB, 6% on
// average). The profile cache charges entries this much beside its own
// bookkeeping, so that its byte budget bounds real memory
// (TestPackedMemSizeMatchesHeap and TestCacheStaysWithinBudget in edge
// measure that it does).
func (p Packed) MemSize() int {
	return len(p.s) + len(p.s)/16 + allocOverhead
}
