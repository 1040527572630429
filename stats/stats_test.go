package stats

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The reference values below were computed independently with Python 3.11
// and its standard library only (testdata/reference.py): chance to beat
// the control by numerical integration of ∫ f_B(x) F_A(x) dx over the two
// Beta posteriors on a 400,000-point grid (one case has the exact rational
// answer 16/21); SRM p-values from the closed forms of the chi-square
// survival function (1 df: erfc(√(x/2)); 2 df: e^(-x/2); 3 df:
// erfc(√(x/2)) + √(2x/π) e^(-x/2)); uplift intervals from the Katz log
// interval written out in Python.

func TestChanceToBeat(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cc, nc, c, n int64
		want         float64
	}{
		{"10% vs 15% of 1000", 100, 1000, 150, 1000, 0.999642362899689},
		{"small groups", 10, 100, 12, 100, 0.6707204651967088},
		{"no conversions in the control: 16/21", 0, 10, 1, 10, 16.0 / 21},
		{"variant worse", 200, 1000, 180, 1000, 0.12740477309391957},
		{"equal", 50, 1000, 50, 1000, 0.5},
		{"large, exact sum", 20000, 100000, 20300, 100000, 0.9527725518771898},
		{"nearly equal", 99, 1000, 100, 1000, 0.5296961963565288},
		{"most convert (sums over failures)", 5, 20, 15, 20, 0.9991607824250074},
		{"beyond the exact limit: normal approximation", 300000, 1000000, 301000, 1000000, 0.9384995516098718},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, ChanceToBeat(tc.cc, tc.nc, tc.c, tc.n), 1e-6)
		})
	}
}

func TestSRM(t *testing.T) {
	for _, tc := range []struct {
		name    string
		obs     []int64
		weights []float64
		want    float64
	}{
		{"50/50 close", []int64{1010, 990}, []float64{1, 1}, 0.654720846018577},
		{"50/50 mismatch", []int64{5200, 4800}, []float64{1, 1}, 6.334248366623977e-05},
		{"10/30/60", []int64{1050, 2950, 6000}, []float64{10, 30, 60}, 0.18887560283756183},
		{"three equal", []int64{990, 1010, 1000}, []float64{1, 1, 1}, 0.9048374180359595},
		{"four equal", []int64{260, 240, 250, 250}, []float64{1, 1, 1, 1}, 0.8494670333918255},
		{"exact split", []int64{1000, 1000}, []float64{1, 1}, 1},
		{"no visitors", []int64{0, 0}, []float64{1, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SRM(tc.obs, tc.weights)
			assert.InEpsilon(t, tc.want, got, 1e-9)
		})
	}
	assert.Less(t, SRM([]int64{5200, 4800}, []float64{1, 1}), SRMThreshold)
}

func TestUplift(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cc, nc, c, n int64
		up, lo, hi   float64
	}{
		{"10% vs 15%", 100, 1000, 150, 1000, 0.5, 0.18305690016605092, 0.9018527339506619},
		{"small", 10, 100, 12, 100, 0.2, -0.45653417672641405, 1.649660637951634},
		{"negative", 200, 1000, 180, 1000, -0.1, -0.24922541609177584, 0.07888574994570607},
		{"unequal groups", 1, 50, 3, 40, 2.75, -0.5946063942161579, 33.68850963450617},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, lo, hi, ok := Uplift(tc.cc, tc.nc, tc.c, tc.n)
			assert.True(t, ok)
			assert.InDelta(t, tc.up, up, 1e-12)
			assert.InDelta(t, tc.lo, lo, 1e-9)
			assert.InDelta(t, tc.hi, hi, 1e-9)
		})
	}
	_, _, _, ok := Uplift(0, 100, 5, 100)
	assert.False(t, ok, "no control conversions: no ratio")
	_, _, _, ok = Uplift(5, 100, 0, 100)
	assert.False(t, ok)
}

func TestWilson(t *testing.T) {
	// Python reference (testdata/reference.py's formula): p̃ ± z·√(p(1-p)/n
	// + z²/4n²) / (1 + z²/n) with p̃ = (p + z²/2n) / (1 + z²/n).
	for _, tc := range []struct {
		c, n   int64
		lo, hi float64
	}{
		{100, 1000, 0.08290944359309571, 0.1201519631953484},
		{150, 1000, 0.1292100725130883, 0.17346865842680032},
		{0, 10, 0, 0.2775327998628892},
		{10, 10, 0.7224672001371107, 1},
		{81, 263, 0.2552885198782742, 0.36620957698280004},
	} {
		lo, hi := Wilson(tc.c, tc.n)
		assert.InDelta(t, tc.lo, lo, 1e-12, "%d/%d", tc.c, tc.n)
		assert.InDelta(t, tc.hi, hi, 1e-12, "%d/%d", tc.c, tc.n)
	}
	lo, hi := Wilson(0, 0)
	assert.Equal(t, [2]float64{0, 1}, [2]float64{lo, hi})
}

func TestRate(t *testing.T) {
	assert.Equal(t, 0.25, Rate(1, 4))
	assert.Zero(t, Rate(0, 0))
}

func BenchmarkChanceToBeat(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ChanceToBeat(20000, 100000, 20300, 100000)
	}
}
