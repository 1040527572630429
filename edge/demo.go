package edge

import (
	"context"
	"errors"
	"io/fs"
	"mime"
	"path"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/etalage/etalage/snippets"
	"github.com/valyala/fasthttp"
)

// serveDemo serves the demo shop under /demo/ (demo mode only): /demo/ is
// index.html, /demo/<page> is <page>.html, other files are served as they are.
func (s *Server) serveDemo(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if p == "/" || p == "/demo" {
		ctx.Redirect("/demo/", fasthttp.StatusFound)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	name := strings.TrimPrefix(path.Clean(p), "/demo")
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "index.html"
	}
	if path.Ext(name) == "" {
		name += ".html"
	}
	b, err := fs.ReadFile(snippets.Demo, name)
	if err != nil {
		if strings.HasSuffix(name, ".html") {
			if b2, err2 := fs.ReadFile(snippets.Demo, strings.TrimSuffix(name, ".html")+"/index.html"); err2 == nil {
				b, err = b2, nil
			}
		}
	}
	if err != nil {
		s.writeError(ctx, errorf(ECodeNotFound, "no such demo page"))
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(b)
}

// serveDemoMe answers GET /demo/api/me in demo mode: the caller's own
// profile and the explanation of its decision, for the demo's side panel.
// It only ever shows the profile of the cookie the request carries.
func (s *Server) serveDemoMe(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	d := s.defs.Load()
	r := acquireRequest()
	defer releaseRequest(r)
	s.fillContext(ctx, r, false)
	svc, now := s.profiles, s.cfg.Now()
	pr := s.pretending(ctx, r, false)
	if pr != nil {
		svc, now = pr.svc, pr.now
	}
	pid, ok := s.visitorOf(ctx, nil)
	in := rules.Input{Profile: emptyProfile, Seasonal: d.noSeasons, Now: now, Context: r.ctx}
	var prof any
	if ok {
		// Never a context derived from the RequestCtx: a timer could
		// still read it after fasthttp recycled it.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		snap, err := svc.Load(sctx, pid, d.policy)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		in.Profile, in.Seasonal = snap.Primary, snap.Seasonal
		if prof, err = svc.Export(sctx, pid, d.policy); err != nil && !errors.Is(err, profile.ErrNotFound) {
			s.writeError(ctx, err)
			return
		}
	}
	slots := strings.Split(string(ctx.QueryArgs().Peek("slots")), ",")
	if len(slots) == 1 && slots[0] == "" {
		slots = []string{"greeting", "banner-top", "home-hero", "home-moment", "home-picks", "home-cart", "home-newsletter"}
	}
	out := s.explain(d, &in, pid, slots)
	out["profile"] = prof
	// What the demo page tells its visitor about how the service sees it:
	// a browser taken for a bot gets no cookie and nothing is remembered,
	// and one whose cookie does not come back starts over on every page.
	out["cookie"] = ok
	out["bot"] = in.Context.Bot
	if s.cfg.DemoPretend {
		var p pretense
		if pr != nil {
			p = *pr
		}
		out["pretend"] = pretendState(s.cfg.Now(), p.shift, p.device, p.language, d.set.Location())
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}

// demoTokenTTL is how long a demo identity token proves its address.
const demoTokenTTL = 15 * time.Minute

// serveDemoToken answers POST /demo/api/token {"email"} in demo mode with an
// identity token for that address: it stands for the shop backend, which
// issues one when a customer logs in (docs/INTEGRATION.md). It has no
// password check, so it only signs the reserved example domains
// (example.com, x.example, x.test, …) that no real customer has: a demo
// left on in production cannot be used to prove a real address.
func (s *Server) serveDemoToken(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	r := acquireRequest()
	defer releaseRequest(r)
	v, err := r.parser.ParseBytes(ctx.PostBody())
	if err != nil {
		s.writeError(ctx, errorf(ECodeInvalid, `the body must be {"email": "…"}`))
		return
	}
	addr, err := profile.NormaliseEmail(string(v.GetStringBytes("email")))
	if err != nil {
		s.writeError(ctx, errorf(ECodeInvalid, "email: not an e-mail address"))
		return
	}
	if !exampleDomain(addr) {
		s.writeError(ctx, errorf(ECodeForbidden, "the demo signs in example addresses only (like sam@example.com); a shop's backend issues real tokens"))
		return
	}
	tok, err := SignIdentity(s.cfg.IdentityKeys[0], "email:"+addr, s.cfg.Now().Add(demoTokenTTL))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"token": tok})
}

// exampleDomain reports whether addr's domain is reserved for examples and
// tests (RFC 2606, RFC 6761): example.<tld>, *.example, *.test, *.invalid,
// *.localhost.
func exampleDomain(addr string) bool {
	_, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	switch labels[len(labels)-1] {
	case "example", "test", "invalid", "localhost":
		return true
	}
	return len(labels) == 2 && labels[0] == "example"
}
