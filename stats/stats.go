package stats

import "math"

// z975 is the 97.5th percentile of the standard normal distribution: a
// two-sided 95% interval is the estimate ± z975 standard errors.
const z975 = 1.959963984540054

// Rate is conversions/visitors, 0 when there are no visitors.
func Rate(conversions, visitors int64) float64 {
	if visitors <= 0 {
		return 0
	}
	return float64(conversions) / float64(visitors)
}

// Wilson returns the Wilson score 95% interval of a rate (Wilson, 1927):
// unlike the normal approximation it stays within [0, 1] and holds up for
// small counts and rates near 0 or 1. Without visitors it is [0, 1].
func Wilson(conversions, visitors int64) (lo, hi float64) {
	if visitors <= 0 {
		return 0, 1
	}
	n := float64(visitors)
	p := float64(conversions) / n
	z2 := z975 * z975
	d := 1 + z2/n
	mid := (p + z2/(2*n)) / d
	half := z975 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / d
	return math.Max(0, mid-half), math.Min(1, mid+half)
}

// Uplift returns the relative uplift of a variant's rate over the
// control's (rate/control rate - 1) with its 95% interval, from the
// log of the ratio of the two proportions and its delta-method standard
// error (Katz et al., 1978): se = sqrt(1/c - 1/n + 1/cc - 1/nc). ok is
// false when either group has no conversions or every visitor converted,
// where the ratio or its error is undefined.
func Uplift(cc, nc, c, n int64) (uplift, lo, hi float64, ok bool) {
	if cc <= 0 || c <= 0 || cc > nc || c > n || nc <= 0 || n <= 0 {
		return 0, 0, 0, false
	}
	ratio := Rate(c, n) / Rate(cc, nc)
	se := math.Sqrt(1/float64(c) - 1/float64(n) + 1/float64(cc) - 1/float64(nc))
	if se == 0 {
		return ratio - 1, 0, 0, false
	}
	l := math.Log(ratio)
	return ratio - 1, math.Exp(l-z975*se) - 1, math.Exp(l+z975*se) - 1, true
}

// exactLimit bounds the terms of the exact sum in ChanceToBeat; beyond it a
// normal approximation of the two Beta posteriors is used (with that many
// conversions and non-conversions in every group the Beta distributions
// are very close to normal).
const exactLimit = 200_000

// ChanceToBeat is the probability that the variant's true rate is higher
// than the control's, with a uniform Beta(1, 1) prior on both rates:
// P(pB > pA) for pA ~ Beta(1+cc, 1+nc-cc) and pB ~ Beta(1+c, 1+n-c).
//
// It is computed exactly with the closed form of Evan Miller ("Formulas
// for Bayesian A/B testing", 2015):
//
//	P(pB > pA) = Σ_{i=0}^{αB-1} B(αA+i, βA+βB) / ((βB+i) B(1+i, βB) B(αA, βA))
//
// in log space, summing over whichever of the four parameters is smallest
// (the sum is symmetric under swapping the groups, or successes and
// failures). When even that exceeds exactLimit terms it uses the normal
// approximation of the two posteriors.
func ChanceToBeat(cc, nc, c, n int64) float64 {
	aA, bA := float64(1+cc), float64(1+nc-cc)
	aB, bB := float64(1+c), float64(1+n-c)
	m := math.Min(math.Min(aA, bA), math.Min(aB, bB))
	if m > exactLimit {
		return normalBeat(aA, bA, aB, bB)
	}
	switch m {
	case aB:
		return betaBeat(aA, bA, aB, bB)
	case aA:
		return 1 - betaBeat(aB, bB, aA, bA)
	case bA:
		// pB > pA  ⇔  1-pA > 1-pB, with 1-p ~ Beta(β, α).
		return betaBeat(bB, aB, bA, aA)
	default: // bB
		return 1 - betaBeat(bA, aA, bB, aB)
	}
}

// betaBeat is P(pB > pA) by Miller's sum over i < aB; aB is a whole number.
func betaBeat(aA, bA, aB, bB float64) float64 {
	lbA := lbeta(aA, bA)
	total := 0.0
	for i := 0.0; i < aB; i++ {
		total += math.Exp(lbeta(aA+i, bA+bB) - math.Log(bB+i) - lbeta(1+i, bB) - lbA)
	}
	return math.Min(math.Max(total, 0), 1)
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

func normalBeat(aA, bA, aB, bB float64) float64 {
	mean := func(a, b float64) float64 { return a / (a + b) }
	variance := func(a, b float64) float64 { return a * b / ((a + b) * (a + b) * (a + b + 1)) }
	d := mean(aB, bB) - mean(aA, bA)
	sd := math.Sqrt(variance(aA, bA) + variance(aB, bB))
	return 0.5 * math.Erfc(-d/sd/math.Sqrt2)
}

// SRMThreshold is the p-value below which a sample-ratio mismatch is
// flagged: the observed split is then very unlikely under the weights, and
// the experiment's results should not be trusted.
const SRMThreshold = 0.001

// SRM returns the p-value of Pearson's chi-square goodness-of-fit test of the
// observed visitors per variant against the expected shares (weights, any
// scale), with len(observed)-1 degrees of freedom. It is 1 when there is
// nothing to test (fewer than two groups or no visitors).
func SRM(observed []int64, weights []float64) float64 {
	if len(observed) < 2 || len(observed) != len(weights) {
		return 1
	}
	var total int64
	var wsum float64
	for i, o := range observed {
		total += o
		wsum += weights[i]
	}
	if total == 0 || wsum <= 0 {
		return 1
	}
	x := 0.0
	for i, o := range observed {
		e := weights[i] / wsum * float64(total)
		if e <= 0 {
			return 1
		}
		x += (float64(o) - e) * (float64(o) - e) / e
	}
	return ChiSquareSurvival(x, len(observed)-1)
}

// ChiSquareSurvival is P(X ≥ x) for X chi-square distributed with df degrees
// of freedom: the regularised upper incomplete gamma function Q(df/2, x/2).
func ChiSquareSurvival(x float64, df int) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(float64(df)/2, x/2)
}

// gammaQ is the regularised upper incomplete gamma function, by its power
// series for x < a+1 and by its continued fraction (modified Lentz)
// otherwise, as in Numerical Recipes (3rd ed., §6.2).
func gammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		// P(a, x) = e^-x x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n))
		sum, term := 1/a, 1/a
		for n := 1; n < 10000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-16 {
				break
			}
		}
		return math.Max(0, 1-sum*math.Exp(-x+a*math.Log(x)-lg))
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-16 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}
