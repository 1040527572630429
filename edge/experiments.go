package edge

import (
	"context"
	"errors"
	"math"
	"net/url"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/etalage/etalage/stats"
	"github.com/valyala/fasthttp"
)

// expose records the first exposures a decision made (experiments and the
// holdout) on pid's profile, counting them in the same store write, and
// caches the result. It reports false when they could not be recorded: the
// caller then decides again without entering anyone, so that an answer
// never lists (or shows) an exposure that was not counted. The same hash
// assigns the visitor the same variants at their next decide.
func (s *Server) expose(pid string, snap *profile.Snapshot, news []profile.Assignment, d *defs) bool {
	if !s.breaker.allow() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteDeadline)
	got, err := s.profiles.Expose(ctx, pid, snap, news, d.policy)
	cancel()
	s.breaker.done(err == nil || !isStoreFailure(err))
	if err != nil {
		s.cache.del(pid)
		s.logStoreError("decide: record exposure", err)
		return false
	}
	s.metrics.exposures.Add(len(news))
	s.cache.set(pid, got, d.policy)
	return true
}

// appendExposures writes the decide answer's "experiments" list: the
// holdout first (as experiment "holdout"), then the experiments of the
// requested slots.
func appendExposures(b []byte, holdout string, xs []rules.Exposure) []byte {
	b = append(b, `,"experiments":[`...)
	if holdout != "" {
		b = append(b, `{"id":"holdout","variant":`...)
		b = appendJSONString(b, holdout)
		b = append(b, '}')
	}
	for i := range xs {
		if i > 0 || holdout != "" {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, xs[i].Experiment.ID)
		b = append(b, `,"variant":`...)
		b = appendJSONString(b, xs[i].Variant.ID)
		b = append(b, '}')
	}
	return append(b, ']')
}

// variantReport is one variant's line in an experiment report.
type variantReport struct {
	ID          string      `json:"id"`
	Weight      float64     `json:"weight"`
	Visitors    int64       `json:"visitors"`
	Conversions int64       `json:"conversions"`
	Rate        float64     `json:"rate"`
	RateCI95    [2]float64  `json:"rate_ci95"`
	Uplift      *float64    `json:"uplift,omitempty"`
	CI95        *[2]float64 `json:"ci95,omitempty"`
	Chance      *float64    `json:"chance_to_beat_control,omitempty"`
}

// experimentReport is the answer of GET /admin/v1/experiments/{id} and
// GET /admin/v1/holdout.
type experimentReport struct {
	ID          string          `json:"id"`
	Slot        string          `json:"slot,omitempty"`
	Running     bool            `json:"running"`
	Variants    []variantReport `json:"variants"`
	SRMP        float64         `json:"srm_p"`
	SRMMismatch bool            `json:"srm_mismatch"`
}

// buildReport turns the tallies of an experiment into its report; the first
// variant is the control.
func buildReport(id string, variants []string, weights []float64, t map[string]int64) experimentReport {
	rep := experimentReport{ID: id, Variants: make([]variantReport, len(variants))}
	obs := make([]int64, len(variants))
	for i, v := range variants {
		n := t[profile.VisitorsField(v)]
		c := min(t[profile.ConversionsField(v)], n)
		obs[i] = n
		lo, hi := stats.Wilson(c, n)
		rep.Variants[i] = variantReport{ID: v, Weight: weights[i], Visitors: n, Conversions: c, Rate: round(stats.Rate(c, n)), RateCI95: [2]float64{round(lo), round(hi)}}
	}
	ctl := rep.Variants[0]
	for i := 1; i < len(rep.Variants); i++ {
		vr := &rep.Variants[i]
		if up, lo, hi, ok := stats.Uplift(ctl.Conversions, ctl.Visitors, vr.Conversions, vr.Visitors); ok {
			up, lo, hi = round(up), round(lo), round(hi)
			vr.Uplift, vr.CI95 = &up, &[2]float64{lo, hi}
		}
		if ctl.Visitors > 0 && vr.Visitors > 0 {
			p := round(stats.ChanceToBeat(ctl.Conversions, ctl.Visitors, vr.Conversions, vr.Visitors))
			vr.Chance = &p
		}
	}
	rep.SRMP = stats.SRM(obs, weights)
	rep.SRMMismatch = rep.SRMP < stats.SRMThreshold
	return rep
}

// round keeps six decimals: enough for a report, and stable in JSON.
func round(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// serveExperiment answers GET /admin/v1/experiments/{id}.
func (s *Server) serveExperiment(ctx *fasthttp.RequestCtx, ref string) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	id, err := url.PathUnescape(ref)
	d := s.defs.Load()
	e := d.set.Experiment(id)
	if err != nil || e == nil {
		s.writeError(ctx, errorf(ECodeNotFound, "no such experiment in the running definitions"))
		return
	}
	names := make([]string, len(e.Variants))
	for i := range e.Variants {
		names[i] = e.Variants[i].ID
	}
	rep, err := s.report(e.ID, names, e.Weights())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	rep.Slot = e.Slot
	rep.Running = e.Running(s.cfg.Now())
	s.writeJSON(ctx, fasthttp.StatusOK, rep)
}

// serveHoldout answers GET /admin/v1/holdout: the holdout against everyone
// else (personalised), in the same shape as an experiment report.
func (s *Server) serveHoldout(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	h := s.defs.Load().set.Holdout()
	if h == nil {
		s.writeError(ctx, errorf(ECodeNotFound, "the running definitions have no holdout"))
		return
	}
	rep, err := s.report(profile.HoldoutID, []string{profile.VariantHoldout, profile.VariantPersonalised}, []float64{h.Percent / 100, 1 - h.Percent/100})
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	rep.ID = "holdout"
	rep.Running = true
	s.writeJSON(ctx, fasthttp.StatusOK, rep)
}

func (s *Server) report(id string, variants []string, weights []float64) (experimentReport, error) {
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	defer cancel()
	t, err := s.profiles.Tallies(cctx, profile.TallyName(id))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(profile.ErrUnavailable, err)
		}
		return experimentReport{}, err
	}
	return buildReport(id, variants, weights, t), nil
}
