package edge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Pretending, in the demo shop: some demo segments depend on when and on
// what a visitor browses (weekend, evening, a phone in the Netherlands, a
// season, coming back another day, a cart left for half an hour). The demo
// page lets its visitor pretend those, so that every segment can be
// reached by clicking:
//
//   - POST /demo/api/pretend sets the etalage_pretend cookie: a forward
//     shift of the clock (at most a year) and a device and language, signed
//     with the cookie key so that only this service sets it.
//   - A decide, an events request or /demo/api/me that carries it, from the
//     browser's own visitor cookie, runs at the shifted time: the decision
//     sees that time and that device and language, and the events of that
//     request are stamped with that time (so a page view "tomorrow" is a
//     new visit and a gift in the cart "on 10 December" goes to the
//     Christmas profile). Nothing else changes: the cookie only ever
//     touches the profile of the browser that holds it, as that browser's
//     own events do; a forwarded visitor, an API-key call and a bot are
//     never affected.
//   - It is honoured only with Config.DemoPretend (serve --dev with the
//     demo on); elsewhere the cookie is ignored and the route is a 404.
const pretendCookie = "etalage_pretend"

// maxPretendShift bounds how far ahead a visitor may pretend to be.
const maxPretendShift = 366 * 24 * time.Hour

// pretense is one request's pretended time, device and language.
type pretense struct {
	shift            time.Duration
	device, language string
	now              time.Time
	// svc is the profile service on the shifted clock: it stamps events
	// and picks seasonal profiles at the pretended time.
	svc *profile.Service
}

// pretendDevices are the devices one may pretend to use ("" keeps the
// browser's own).
var pretendDevices = map[string]bool{"": true, "mobile": true, "tablet": true, "desktop": true}

func (s *Server) pretendMAC(body string) string {
	m := hmac.New(sha256.New, s.cfg.Secrets[0])
	m.Write([]byte("etalage pretend " + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// encodePretense is "<shift seconds>.<device>.<language>.<mac>".
func (s *Server) encodePretense(shift time.Duration, device, language string) string {
	body := strconv.FormatInt(int64(shift/time.Second), 10) + "." + device + "." + language
	return body + "." + s.pretendMAC(body)
}

// readPretense reads the request's pretend cookie; false when it is absent,
// not signed by this service or out of bounds.
func (s *Server) readPretense(ctx *fasthttp.RequestCtx) (shift time.Duration, device, language string, ok bool) {
	v := string(ctx.Request.Header.Cookie(pretendCookie))
	i := strings.LastIndexByte(v, '.')
	if i < 0 || len(v) > 128 || len(s.cfg.Secrets) == 0 || !hmac.Equal([]byte(v[i+1:]), []byte(s.pretendMAC(v[:i]))) {
		return 0, "", "", false
	}
	parts := strings.Split(v[:i], ".")
	if len(parts) != 3 {
		return 0, "", "", false
	}
	secs, err := strconv.ParseInt(parts[0], 10, 64)
	shift = time.Duration(secs) * time.Second
	if err != nil || shift < 0 || shift > maxPretendShift || !pretendDevices[parts[1]] || len(parts[2]) > 8 {
		return 0, "", "", false
	}
	return shift, parts[1], parts[2], true
}

// pretending returns the pretense of a request from the browser itself (no
// forwarded visitor, no API key, not a bot) that carries a valid pretend
// cookie in pretend mode, after putting its device and language into the
// request's rules context; nil otherwise, and always outside demo mode.
func (s *Server) pretending(ctx *fasthttp.RequestCtx, r *request, trusted bool) *pretense {
	if !s.cfg.DemoPretend || trusted || len(r.visitor) > 0 || r.ctx.Bot {
		return nil
	}
	shift, device, language, ok := s.readPretense(ctx)
	if !ok {
		return nil
	}
	if device != "" {
		r.ctx.Device = device
	}
	if language != "" {
		r.ctx.Language = language
	}
	now := s.cfg.Now
	p := &pretense{shift: shift, device: device, language: language, now: now().Add(shift)}
	p.svc = profile.NewService(s.store, profile.Options{Now: func() time.Time { return now().Add(shift) }})
	return p
}

// loadAs loads pid's snapshot as load does, or at the pretended time: then
// around the cache, whose snapshots are picked at the real time.
func (s *Server) loadAs(p *pretense, ctx context.Context, pid string, d *defs, sc *profile.Scratch) (*profile.Snapshot, error) {
	if p == nil {
		return s.load(ctx, pid, d, sc)
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreDeadline)
	defer cancel()
	return p.svc.Load(sctx, pid, d.policy)
}

// recordAs records events as record does, or stamped at the pretended
// time; the cached snapshot is dropped, so that the real clock's next
// request reads what was written.
func (s *Server) recordAs(p *pretense, ctx context.Context, pid string, events []profile.Event, d *defs, deadline time.Duration, sc *profile.Scratch) (*profile.Snapshot, error) {
	if p == nil {
		return s.record(ctx, pid, events, d, deadline, sc)
	}
	sctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	snap, err := p.svc.Record(sctx, pid, nil, events, d.policy)
	s.cache.del(pid)
	if err != nil {
		return nil, err
	}
	s.cache.del(snap.Primary.ID)
	s.metrics.eventsAccepted.Add(len(events))
	return snap, nil
}

// pretendMoments are what the demo page offers to pretend, each the next
// such moment after the (pretended) now, in the definitions' time zone:
// time only moves forward, as it does for a real visitor.
var pretendMoments = map[string]func(now time.Time) time.Time{
	"now": func(now time.Time) time.Time { return now },
	// Saturday 11:00: the weekend, before the evening.
	"saturday-morning": func(now time.Time) time.Time {
		return nextAt(now, 11, func(w time.Weekday) bool { return w == time.Saturday })
	},
	// A weekday at 20:30: the evening, not the weekend.
	"weekday-evening": func(now time.Time) time.Time {
		return nextAt(now, 20, func(w time.Weekday) bool { return w != time.Saturday && w != time.Sunday }).Add(30 * time.Minute)
	},
	// 10 December, 12:00: the Christmas season (collects 6–24 December).
	"december-10": func(now time.Time) time.Time {
		t := time.Date(now.Year(), time.December, 10, 12, 0, 0, 0, now.Location())
		if !t.After(now) {
			t = t.AddDate(1, 0, 0)
		}
		return t
	},
	// Coming back tomorrow: a new visit, and a cart left since yesterday.
	"tomorrow": func(now time.Time) time.Time { return now.Add(24 * time.Hour) },
}

// nextAt is the first time after now at hour:00 on a day that ok accepts.
func nextAt(now time.Time, hour int, ok func(time.Weekday) bool) time.Time {
	t := time.Date(now.Year(), now.Month(), now.Day(), hour, 0, 0, 0, now.Location())
	for !t.After(now) || !ok(t.Weekday()) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// serveDemoPretend answers POST /demo/api/pretend {"at", "phone"} in
// pretend mode: at is one of pretendMoments ("now" stops pretending a
// time), phone pretends a phone with Dutch as its language (false stops);
// either may be left out to keep what is pretended. It sets the cookie and
// answers what is pretended now. GET answers that without changing it.
func (s *Server) serveDemoPretend(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	if !s.cfg.DemoPretend {
		s.writeError(ctx, errorf(ECodeNotFound, "pretending is for the demo in development mode (etalage serve --dev)"))
		return
	}
	shift, device, language, _ := s.readPretense(ctx)
	loc := s.defs.Load().set.Location()
	real := s.cfg.Now()
	switch {
	case ctx.IsGet():
	case ctx.IsPost():
		r := acquireRequest()
		defer releaseRequest(r)
		v, err := r.parser.ParseBytes(ctx.PostBody())
		if err != nil || v.Type() != fastjson.TypeObject {
			s.writeError(ctx, errorf(ECodeInvalid, `the body must be {"at": "saturday-morning", "phone": true}, either left out to keep it`))
			return
		}
		if at := v.Get("at"); at != nil {
			moment, ok := pretendMoments[string(at.GetStringBytes())]
			if !ok {
				s.writeError(ctx, errorf(ECodeInvalid, "at: one of now, saturday-morning, weekday-evening, december-10, tomorrow"))
				return
			}
			next := shift
			if string(at.GetStringBytes()) == "now" {
				next = 0
			} else {
				next = moment(real.Add(shift).In(loc)).Sub(real).Truncate(time.Second)
			}
			if next > maxPretendShift {
				s.writeError(ctx, errorf(ECodeInvalid, "at: that is more than a year ahead; stop pretending first"))
				return
			}
			shift = next
		}
		if ph := v.Get("phone"); ph != nil {
			b, err := ph.Bool()
			if err != nil {
				s.writeError(ctx, errorf(ECodeInvalid, "phone: true or false"))
				return
			}
			device, language = "", ""
			if b {
				device, language = "mobile", "nl"
			}
		}
		s.setPretendCookie(ctx, shift, device, language)
	default:
		s.methodNotAllowed(ctx, "GET, POST")
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, pretendState(real, shift, device, language, loc))
}

func pretendState(real time.Time, shift time.Duration, device, language string, loc *time.Location) map[string]any {
	return map[string]any{
		"pretending": shift > 0 || device != "",
		"now":        real.Add(shift).In(loc).Format(time.RFC3339),
		"shift":      int64(shift / time.Second),
		"device":     device,
		"language":   language,
		"zone":       loc.String(),
	}
}

func (s *Server) setPretendCookie(ctx *fasthttp.RequestCtx, shift time.Duration, device, language string) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(pretendCookie)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSecure(s.cfg.CookieSecure)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	if shift == 0 && device == "" {
		c.SetExpire(fasthttp.CookieExpireDelete)
	} else {
		c.SetValue(s.encodePretense(shift, device, language))
	}
	ctx.Response.Header.SetCookie(c)
}
