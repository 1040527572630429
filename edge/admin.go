package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// adminDeadline bounds a single-profile admin call.
const adminDeadline = 5 * time.Second

// resolve turns an admin profile reference into a profile id: a visitor
// value as decide returned it, "email:<address>", "customer:<id>", or a bare
// profile id.
func (s *Server) resolve(ctx context.Context, ref string) (string, error) {
	if strings.Contains(ref, ".") && !strings.Contains(ref, ":") {
		pid, ok := s.signer.Verify([]byte(ref))
		if !ok {
			return "", errorf(ECodeNotFound, "not a valid visitor value")
		}
		return pid, nil
	}
	pid, err := s.profiles.Resolve(ctx, ref)
	if errors.Is(err, profile.ErrNotFound) {
		return "", errorf(ECodeNotFound, "no profile for this reference")
	}
	if errors.Is(err, profile.ErrInvalid) {
		return "", errorf(ECodeInvalid, "a profile reference is a visitor value, email:<address>, customer:<id> or a profile id")
	}
	return pid, err
}

// serveProfile answers GET (right of access) and DELETE (right to erasure)
// /admin/v1/profiles/{id}.
func (s *Server) serveProfile(ctx *fasthttp.RequestCtx, ref string) {
	ref, err := url.PathUnescape(ref)
	if err != nil || ref == "" {
		s.writeError(ctx, errorf(ECodeInvalid, "bad profile reference"))
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	defer cancel()
	d := s.defs.Load()
	if ctx.IsDelete() && (strings.HasPrefix(ref, "email:") || strings.HasPrefix(ref, "customer:")) {
		// Erasing an identifier reaches further than the profile it links
		// to: unproven claims of it on other profiles go too, and a link
		// whose profile expired.
		s.eraseIdentifier(ctx, cctx, ref, d)
		return
	}
	pid, err := s.resolve(cctx, ref)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	switch {
	case ctx.IsGet():
		out, err := s.profiles.Export(cctx, pid, d.policy)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		s.writeJSON(ctx, fasthttp.StatusOK, out)
	case ctx.IsDelete():
		ids := s.personIDs(cctx, pid, d)
		if err := s.profiles.Erase(cctx, pid, d.policy); err != nil {
			s.writeError(ctx, err)
			return
		}
		if err := s.rememberErased(cctx, ids); err != nil {
			s.writeError(ctx, err)
			return
		}
		s.log.Info("profile erased", "profile", pid)
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"erased": pid})
	default:
		s.methodNotAllowed(ctx, "GET, DELETE")
	}
}

// eraseIdentifier answers DELETE /admin/v1/profiles/{email:…|customer:…}.
func (s *Server) eraseIdentifier(ctx *fasthttp.RequestCtx, cctx context.Context, ref string, d *defs) {
	pid, err := s.profiles.Resolve(cctx, ref)
	if errors.Is(err, profile.ErrInvalid) {
		s.writeError(ctx, errorf(ECodeInvalid, "a profile reference is a visitor value, email:<address>, customer:<id> or a profile id"))
		return
	}
	var ids []string
	if pid != "" {
		ids = s.personIDs(cctx, pid, d)
	}
	err = s.profiles.Erase(cctx, ref, d.policy)
	if errors.Is(err, profile.ErrNotFound) {
		s.writeError(ctx, errorf(ECodeNotFound, "no profile for this reference"))
		return
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if err := s.rememberErased(cctx, ids); err != nil {
		s.writeError(ctx, err)
		return
	}
	kind, _, _ := strings.Cut(ref, ":")
	s.log.Info("profile erased", "by", kind, "profile", pid)
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"erased": pid})
}

// personIDs are every visitor id of the person whose profile is pid: the
// profile and the browsers merged into it.
func (s *Server) personIDs(ctx context.Context, pid string, d *defs) []string {
	ids := []string{pid}
	if snap, err := s.profiles.Load(ctx, pid, d.policy); err == nil {
		ids = append(append(ids, snap.Primary.ID), snap.Primary.Aliases...)
	}
	return ids
}

// rememberErased marks each id as erased, so that none of the person's
// browsers brings its id back: each starts a new visitor.
func (s *Server) rememberErased(ctx context.Context, ids []string) error {
	for _, id := range ids {
		s.cache.del(id)
		if _, err := s.store.Link(ctx, erasedKey(id), "erased", cookieMaxAge*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// serveSegment answers GET /admin/v1/segments/{id}/members?cursor=&limit=
// (or, with format=ndjson|csv, the streamed export: serveExport)
// and GET /admin/v1/segments/{id}/count[?estimate=1]. Membership is
// computed, so members and the exact count scan the stored profiles (the
// count in the background, see serveExactCount); a members page covers `limit` scanned profiles and
// may hold fewer members: follow the cursor until it is empty. Context
// conditions (device, url, …) are false outside a request.
func (s *Server) serveSegment(ctx *fasthttp.RequestCtx, rest string) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	id, what, ok := strings.Cut(rest, "/")
	if !ok || (what != "members" && what != "count") {
		s.writeError(ctx, errorf(ECodeNotFound, "use /admin/v1/segments/{id}/members or /count"))
		return
	}
	d := s.defs.Load()
	if !d.set.HasSegment(id) {
		s.writeError(ctx, errorf(ECodeNotFound, "no segment "+quote(id)))
		return
	}
	limit := 100
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		l, err := strconv.Atoi(string(v))
		if err != nil || l < 1 {
			s.writeError(ctx, errorf(ECodeInvalid, "limit: a number from 1 to 1000"))
			return
		}
		limit = min(l, 1000)
	}
	cursor := string(ctx.QueryArgs().Peek("cursor"))
	member := func(cctx context.Context, pid string) (bool, error) {
		snap, err := s.profiles.Load(cctx, pid, d.policy)
		if err != nil || merged(pid, snap) {
			return false, err
		}
		in := rules.Input{Profile: snap.Primary, Seasonal: snap.Seasonal, Now: s.cfg.Now()}
		return d.set.Member(id, &in)
	}
	if what == "members" && len(ctx.QueryArgs().Peek("format")) > 0 {
		s.serveExport(ctx, id, d)
		return
	}
	if what == "members" {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pids, next, err := s.profiles.Scan(cctx, cursor, limit)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		members := make([]string, 0, len(pids))
		for _, pid := range pids {
			ok, err := member(cctx, pid)
			if err != nil {
				s.writeError(ctx, err)
				return
			}
			if ok {
				members = append(members, pid)
			}
		}
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"segment": id, "members": members, "cursor": next})
		return
	}
	if len(ctx.QueryArgs().Peek("estimate")) > 0 && string(ctx.QueryArgs().Peek("estimate")) != "0" {
		s.serveEstimate(ctx, id, d)
		return
	}
	s.serveExactCount(ctx, id, d)
}

// explainRequest is the body of POST /admin/v1/explain.
type explainRequest struct {
	Visitor string   `json:"visitor"`
	At      string   `json:"at"`
	Slots   []string `json:"slots"`
	Context struct {
		URL       string `json:"url"`
		Referrer  string `json:"referrer"`
		UserAgent string `json:"user_agent"`
		Language  string `json:"language"`
	} `json:"context"`
}

// serveExplain answers POST /admin/v1/explain: the decision for a visitor at
// an optional time, with the trace of every segment and slot.
func (s *Server) serveExplain(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	var req explainRequest
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(ctx, errorf(ECodeInvalid, "explain: "+err.Error()))
		return
	}
	now := s.cfg.Now()
	if req.At != "" {
		t, err := time.Parse(time.RFC3339, req.At)
		if err != nil {
			s.writeError(ctx, errorf(ECodeInvalid, "at: an RFC 3339 time, like 2026-11-24T12:00:00+01:00"))
			return
		}
		now = t
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	defer cancel()
	d := s.defs.Load()
	in := rules.Input{Profile: emptyProfile, Seasonal: d.noSeasons, Now: now}
	pid := ""
	if req.Visitor != "" {
		var err error
		if pid, err = s.resolve(cctx, req.Visitor); err != nil {
			s.writeError(ctx, err)
			return
		}
		snap, err := s.profiles.Load(cctx, pid, d.policy)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		if !stored(snap) {
			s.writeError(ctx, errorf(ECodeNotFound, "no profile is stored for "+quote(req.Visitor)+": this visitor has sent nothing yet, or was erased or expired"))
			return
		}
		in.Profile, in.Seasonal = snap.Primary, snap.Seasonal
	}
	g := classifyAgent(req.Context.UserAgent)
	in.Context = rules.Context{
		Device: g.device, Browser: g.browser, OS: g.os, Bot: g.bot,
		URL: req.Context.URL, Referrer: req.Context.Referrer,
		Language: primaryLanguage([]byte(req.Context.Language)),
	}
	if req.Context.UserAgent == "" {
		in.Context.Device, in.Context.Bot = "desktop", false
	}
	s.writeJSON(ctx, fasthttp.StatusOK, s.explain(d, &in, pid, req.Slots))
}

// stored reports whether any record of the snapshot exists.
func stored(snap *profile.Snapshot) bool {
	for _, r := range snap.Records {
		if r.Version != 0 {
			return true
		}
	}
	return false
}

// explain builds the explain response shared by the admin route and the
// demo's own-profile panel.
func (s *Server) explain(d *defs, in *rules.Input, pid string, slots []string) map[string]any {
	var dec rules.Decision
	d.set.Decide(in, slots, &dec)
	blocks := make(map[string]any, len(dec.Choices))
	for _, c := range dec.Choices {
		if c.Block == nil {
			blocks[c.Slot] = nil
			continue
		}
		b := map[string]any{"id": c.Block.ID}
		if c.HTML != nil {
			b["html"] = string(c.HTML)
		}
		if c.Block.Data != nil {
			b["data"] = json.RawMessage(c.Block.Data)
		}
		blocks[c.Slot] = b
	}
	ex := d.set.Explain(in, slots)
	return map[string]any{
		"profile":  pid,
		"revision": d.rev,
		"at":       in.Now.Format(time.RFC3339),
		"decision": map[string]any{"segments": append([]string{}, dec.Segments...), "blocks": blocks},
		"explain":  ex,
		"words":    d.set.Words(ex),
	}
}
