package profile

import "sort"

// sizeClasses are the sizes Go's allocator rounds small allocations up to
// (internal/runtime/gc.SizeClassToSize); larger ones take whole 8 KB
// pages. TestPackedMemSizeMatchesHeap in edge notices when they change.
var sizeClasses = [...]uint16{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize is the heap an allocation of n pointer-free bytes takes.
func allocSize(n int) int {
	if n > int(sizeClasses[len(sizeClasses)-1]) {
		return (n + 8191) &^ 8191
	}
	return int(sizeClasses[sort.Search(len(sizeClasses), func(i int) bool { return int(sizeClasses[i]) >= n })])
}

// MemSize is the bytes of Go heap p holds: its one pointer-free
// allocation, rounded up to its size class. The profile cache charges
// entries this much beside its own bookkeeping, so that its byte budget
// bounds real memory (TestPackedMemSizeMatchesHeap and
// TestCacheStaysWithinBudget in edge measure that it does).
func (p Packed) MemSize() int {
	if len(p.s) == 0 {
		return 0
	}
	return allocSize(len(p.s))
}
