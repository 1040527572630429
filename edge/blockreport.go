package edge

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/valyala/fasthttp"
)

// maxReportDays bounds the days one block report covers (a quarter).
const maxReportDays = 92

// blockDayReport is one block's line on one day of the block report.
type blockDayReport struct {
	ID       string   `json:"id"`
	Slot     string   `json:"slot,omitempty"` // when the running definitions still hold the block
	Served   int64    `json:"served"`
	Visitors int64    `json:"visitors"`
	Clicks   int64    `json:"clicks"`
	CTR      *float64 `json:"ctr,omitempty"` // clicks per served, when served
}

type dayReport struct {
	Day    string           `json:"day"`
	Blocks []blockDayReport `json:"blocks"`
}

// blockReport is the answer of GET /admin/v1/report.
type blockReport struct {
	From     string      `json:"from"`
	To       string      `json:"to"`
	Timezone string      `json:"timezone"`
	Days     []dayReport `json:"days"`
}

// serveBlockReport answers GET /admin/v1/report?from=YYYY-MM-DD&to=YYYY-MM-DD:
// per day (in the shop's time zone) and block, how often it was served,
// to how many distinct visitors (a HyperLogLog estimate, 0.81% standard
// error; days are not merged, so visitors are not summed over a range),
// and the clicks on it. to defaults to today, from to six days before to.
// The counts are at most one flush (Config.ReportFlush) behind.
func (s *Server) serveBlockReport(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	d := s.defs.Load()
	loc := d.set.Location()
	days, err := reportDays(ctx.QueryArgs(), s.cfg.Now().In(loc))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	rows, err := s.profiles.BlockCounts(cctx, days)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(profile.ErrUnavailable, err)
		}
		s.writeError(ctx, err)
		return
	}
	rep := blockReport{From: days[0], To: days[len(days)-1], Timezone: loc.String(), Days: make([]dayReport, len(days))}
	at := map[string]int{}
	for i, day := range days {
		rep.Days[i] = dayReport{Day: day, Blocks: []blockDayReport{}}
		at[day] = i
	}
	for _, r := range rows {
		i, ok := at[r.Day]
		if !ok {
			continue
		}
		line := blockDayReport{ID: r.Block, Served: r.Served, Visitors: min(r.Visitors, r.Served), Clicks: r.Clicks}
		if b := d.set.Block(r.Block); b != nil {
			line.Slot = b.Slot
		}
		if r.Served > 0 {
			ctr := math.Round(float64(r.Clicks)/float64(r.Served)*1e6) / 1e6
			line.CTR = &ctr
		}
		rep.Days[i].Blocks = append(rep.Days[i].Blocks, line)
	}
	s.writeJSON(ctx, fasthttp.StatusOK, rep)
}

// reportDays reads from and to (both optional) and returns every day from
// one to the other, inclusive.
func reportDays(args *fasthttp.Args, today time.Time) ([]string, error) {
	var from, to time.Time
	var haveFrom, haveTo bool
	for k, v := range args.All() {
		var dst *time.Time
		switch string(k) {
		case "from":
			dst, haveFrom = &from, true
		case "to":
			dst, haveTo = &to, true
		default:
			return nil, errorf(ECodeInvalid, "unknown parameter "+quote(string(k))+"; use from and to")
		}
		t, err := time.Parse(time.DateOnly, string(v))
		if err != nil || t.Format(time.DateOnly) != string(v) {
			return nil, errorf(ECodeInvalid, string(k)+": "+quote(string(v))+" is not a date like 2026-11-24")
		}
		*dst = t
	}
	if !haveTo {
		y, m, d := today.Date()
		to = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	if !haveFrom {
		from = to.AddDate(0, 0, -6)
	}
	if to.Before(from) {
		return nil, errorf(ECodeInvalid, "to ("+to.Format(time.DateOnly)+") is before from ("+from.Format(time.DateOnly)+")")
	}
	// Dates at UTC midnight: whole days apart, whatever the shop's zone.
	n := int(to.Sub(from).Hours()/24) + 1
	if n > maxReportDays {
		return nil, errorf(ECodeInvalid, "from and to span "+strconv.Itoa(n)+" days; a report covers at most 92")
	}
	days := make([]string, n)
	for i := range days {
		days[i] = from.AddDate(0, 0, i).Format(time.DateOnly)
	}
	return days, nil
}
