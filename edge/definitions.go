package edge

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// loadDefinitions installs the definitions at start. A --definitions file
// is applied only when the store holds no definitions or no earlier start
// applied this very file (by its digest): a node restarted with an older
// file than the one another node started with, or than what was applied
// since through the admin API, runs the stored revision instead. Without a
// file it is the stored document, else the demo. A store that cannot be
// reached at start is not fatal: the node runs the file (or the demo) and
// the poller picks the stored document up when the store comes back.
func (s *Server) loadDefinitions(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, rev, err := s.store.Definitions(sctx)
	reachable := true
	switch {
	case errors.Is(err, profile.ErrNotFound):
		stored, rev = nil, 0
	case err != nil:
		s.log.Warn("read stored definitions; starting without them", "err", err)
		stored, rev, reachable = nil, 0, false
	}
	if s.cfg.Definitions != nil {
		return s.loadFile(sctx, stored, rev, reachable)
	}
	if stored != nil {
		set, err := s.compile(stored)
		if err == nil {
			s.swap(set, stored, rev)
			return nil
		}
		s.log.Error("stored definitions do not compile; using the demo", "revision", rev, "err", err)
	}
	demo := s.demo()
	set, err := rules.Compile(demo)
	if err != nil {
		return fmt.Errorf("demo definitions: %w", err)
	}
	s.swap(set, demo, 0)
	return nil
}

// demo returns the demo definitions; on a node that can sign webhooks
// they send cart abandoners and Sinterklaas gift buyers to the demo
// receiver on this node's admin listener (without a key, no webhook).
func (s *Server) demo() []byte {
	doc := rules.Demo()
	if s.cfg.Triggers == nil || !s.cfg.Triggers.CanSign() {
		return doc
	}
	addr := "127.0.0.1:8081"
	if s.cfg.AdminAddr != "" {
		addr = loopbackAddr(s.cfg.AdminAddr)
	}
	return append(doc, rules.DemoWebhooks("http://"+addr+DemoReceiverPath)...)
}

// loopbackAddr turns a listening address (":8081", "0.0.0.0:8081") into
// one to call it on.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// compile compiles a document for this node: a document with webhooks
// needs a signing key.
func (s *Server) compile(doc []byte) (*rules.Set, error) {
	set, err := rules.Compile(doc)
	if err != nil {
		return nil, err
	}
	if err := s.webhookProblem(set); err != nil {
		return nil, err
	}
	return set, nil
}

// FileDigest names a definitions file by its content, as the store
// remembers the files applied at a start.
func FileDigest(doc []byte) string {
	sum := sha256.Sum256(doc)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// loadFile decides between the --definitions file and the stored revision;
// the log line says which and why.
func (s *Server) loadFile(ctx context.Context, stored []byte, rev int64, reachable bool) error {
	doc := s.cfg.Definitions
	set, err := s.compile(doc)
	if err != nil {
		return fmt.Errorf("definitions: %w", err)
	}
	name := s.cfg.DefinitionsName
	digest := FileDigest(doc)
	if !reachable {
		s.log.Warn("store unreachable: running the --definitions file without storing it", "file", name)
		s.swap(set, doc, 0)
		return nil
	}
	frev, ferr := s.store.FileRevision(ctx, digest)
	switch {
	case ferr == nil && stored != nil:
		if bytes.Equal(stored, doc) {
			s.log.Info("definitions: the --definitions file is the stored revision", "file", name, "revision", rev)
			s.swap(set, doc, rev)
			return nil
		}
		if sset, err := s.compile(stored); err == nil {
			s.log.Info("definitions: the --definitions file was applied at an earlier start; running the newer stored revision instead (change the file, or apply it with etalage apply, to use it)",
				"file", name, "file_revision", frev, "revision", rev)
			s.swap(sset, stored, rev)
			return nil
		}
		s.log.Error("stored definitions do not compile; applying the --definitions file", "revision", rev)
	case ferr != nil && !errors.Is(ferr, profile.ErrNotFound):
		s.log.Warn("read the definitions file history; running the --definitions file without storing it", "file", name, "err", ferr)
		s.swap(set, doc, rev)
		return nil
	}
	why := "the file is new: no earlier start applied it"
	if stored == nil {
		why = "the store holds no definitions"
	}
	nrev, created, err := s.store.PutDefinitions(ctx, profile.DefinitionsPut{
		Doc: doc, Expect: profile.AnyRevision, Time: s.cfg.Now(), File: digest,
		Note: "applied at start from " + cmp.Or(name, "--definitions"),
	})
	if err != nil {
		s.log.Warn("store definitions given at start; running them unstored", "file", name, "err", err)
		s.swap(set, doc, rev)
		return nil
	}
	if created {
		s.log.Info("definitions: applied the --definitions file as a new revision", "file", name, "revision", nrev, "why", why)
	} else {
		s.log.Info("definitions: the --definitions file equals the stored revision", "file", name, "revision", nrev)
	}
	s.swap(set, doc, nrev)
	return nil
}

// swap installs a compiled revision atomically; requests in flight finish on
// the one they started with.
func (s *Server) swap(set *rules.Set, doc []byte, rev int64) {
	pol := set.Policy(profile.Policy{
		ConsentNeeded: s.cfg.ConsentNeeded,
		AnonymousTTL:  s.cfg.AnonymousTTL,
		KnownTTL:      s.cfg.KnownTTL,
	})
	if s.cfg.Triggers != nil {
		pol.Watcher = s.cfg.Triggers.Watcher(set)
	}
	s.defs.Store(&defs{set: set, policy: pol, doc: doc, rev: rev, noSeasons: make([]*profile.Profile, len(pol.Seasons)), blockJSON: encodeStaticBlocks(set)})
	s.metrics.definitionsSwaps.Inc()
}

// applyOptions say how a document is applied through the admin API.
type applyOptions struct {
	expect int64 // the revision the caller saw (If-Match), or profile.AnyRevision
	note   string
}

// applyDefinitions validates doc as a whole, stores it as the next revision
// and installs it. A rejected document changes nothing; a document equal to
// the running one is no new revision (changed false); with an expected
// revision that is no longer current it answers a conflict.
func (s *Server) applyDefinitions(ctx context.Context, doc []byte, o applyOptions) (rev int64, changed bool, err error) {
	set, err := s.compile(doc)
	if err != nil {
		return 0, false, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	rev, changed, err = s.store.PutDefinitions(ctx, profile.DefinitionsPut{Doc: doc, Expect: o.expect, Time: s.cfg.Now(), Note: o.note})
	if errors.Is(err, profile.ErrConflict) {
		return rev, false, errorf(ECodeConflict, conflictMessage(rev, o.expect))
	}
	if err != nil {
		return 0, false, fmt.Errorf("store definitions: %w", err)
	}
	if cur := s.defs.Load(); cur == nil || cur.rev < rev || (cur.rev == rev && !bytes.Equal(cur.doc, doc)) {
		s.swap(set, doc, rev)
	}
	if changed {
		s.log.Info("definitions applied", "revision", rev)
	}
	return rev, changed, nil
}

// conflictMessage says why If-Match expect does not name the current
// revision cur, in words that fit: nothing applied yet, a revision that
// never existed, or someone applying in between.
func conflictMessage(cur, expect int64) string {
	switch {
	case cur == 0:
		return fmt.Sprintf("no definitions applied yet, so there is no revision %d: If-Match must be 0 or omitted", expect)
	case expect > cur:
		return fmt.Sprintf("there is no revision %d yet: the current revision is %d; reload, merge your change and apply again", expect, cur)
	}
	return fmt.Sprintf("revision %d was applied since revision %d: reload, merge your change and apply again", cur, expect)
}

// pollDefinitions picks up revisions stored by other nodes; a poll every
// PollInterval bounds how long a change takes to reach every node.
func (s *Server) pollDefinitions() {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	failed := int64(-1) // a stored revision that did not compile: not retried
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rev, err := s.store.Revision(ctx)
		if err != nil || rev == failed || rev <= s.defs.Load().rev {
			cancel()
			continue
		}
		doc, rev, err := s.store.Definitions(ctx)
		cancel()
		if err != nil {
			continue
		}
		set, err := s.compile(doc)
		if err != nil {
			failed = rev
			s.log.Error("stored definitions do not compile; keeping the running ones", "revision", rev, "err", err)
			continue
		}
		s.applyMu.Lock()
		if rev > s.defs.Load().rev {
			s.swap(set, doc, rev)
			s.log.Info("definitions updated from the store", "revision", rev)
		}
		s.applyMu.Unlock()
	}
}

// ifMatch reads If-Match as a revision: "7", 7 or W/"7"; * or no header
// is any revision.
func ifMatch(ctx *fasthttp.RequestCtx) (int64, error) {
	v := strings.TrimSpace(string(ctx.Request.Header.Peek("If-Match")))
	if v == "" || v == "*" {
		return profile.AnyRevision, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(ECodeInvalid, `If-Match: the revision you edited, like "7"`)
	}
	return n, nil
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// serveDefinitions answers /admin/v1/definitions (GET, PUT) and its
// revisions: GET …/revisions[?before=&limit=], GET …/revisions/{n} and
// POST …/revisions/{n}/rollback.
func (s *Server) serveDefinitions(ctx *fasthttp.RequestCtx, rest string) {
	switch {
	case rest == "":
	case rest == "/dry-run":
		s.serveDryRun(ctx)
		return
	case rest == "/revisions":
		s.serveRevisions(ctx)
		return
	case strings.HasPrefix(rest, "/revisions/"):
		s.serveRevision(ctx, strings.TrimPrefix(rest, "/revisions/"))
		return
	default:
		s.writeError(ctx, errorf(ECodeNotFound, "no such route"))
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		d := s.defs.Load()
		ctx.Response.Header.Set("ETag", etag(d.rev))
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"revision": d.rev, "document": string(d.doc)})
	case ctx.IsPut():
		expect, err := ifMatch(ctx)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		doc := append([]byte(nil), ctx.PostBody()...)
		s.apply(ctx, doc, applyOptions{expect: expect, note: string(ctx.QueryArgs().Peek("note"))})
	default:
		s.methodNotAllowed(ctx, "GET, PUT")
	}
}

// apply applies doc and answers {"revision", "changed"} with the new ETag.
func (s *Server) apply(ctx *fasthttp.RequestCtx, doc []byte, o applyOptions) {
	actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	rev, changed, err := s.applyDefinitions(actx, doc, o)
	cancel()
	if err != nil {
		s.writeError(ctx, err)
		if e := (*Error)(nil); errors.As(err, &e) && e.Code == ECodeConflict {
			ctx.Response.Header.Set("ETag", etag(rev))
		}
		return
	}
	ctx.Response.Header.Set("ETag", etag(rev))
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"revision": rev, "changed": changed})
}

// serveRevisions lists kept revisions, newest first, with time and note.
func (s *Server) serveRevisions(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	args := ctx.QueryArgs()
	limit, before := 50, int64(0)
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			s.writeError(ctx, errorf(ECodeInvalid, "limit: a number from 1 to 500"))
			return
		}
		limit = min(n, 500)
	}
	if v := args.Peek("before"); len(v) > 0 {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 1 {
			s.writeError(ctx, errorf(ECodeInvalid, "before: a revision number"))
			return
		}
		before = n
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	defer cancel()
	list, err := s.store.DefinitionsRevisions(cctx, before, limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if list == nil {
		list = []profile.Revision{}
	}
	out := map[string]any{"current": s.defs.Load().rev, "revisions": list}
	if len(list) == limit && list[len(list)-1].Rev > 1 {
		out["before"] = list[len(list)-1].Rev
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}

// serveRevision answers GET …/revisions/{n} (the document and its meta)
// and POST …/revisions/{n}/rollback (that document applied as a new
// revision, honouring If-Match).
func (s *Server) serveRevision(ctx *fasthttp.RequestCtx, rest string) {
	num, action, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || (action != "" && action != "rollback") {
		s.writeError(ctx, errorf(ECodeNotFound, "use /admin/v1/definitions/revisions/{n} or …/{n}/rollback"))
		return
	}
	if action == "" && !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	if action == "rollback" && !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
	r, err := s.store.DefinitionsRevision(cctx, n)
	cancel()
	if errors.Is(err, profile.ErrNotFound) {
		s.writeError(ctx, errorf(ECodeNotFound, "no revision "+num+" is kept"))
		return
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if action == "" {
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"revision": r.Rev, "time": r.Time, "note": r.Note, "file": r.File, "document": string(r.Doc)})
		return
	}
	expect, err := ifMatch(ctx)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	note := "rollback to revision " + num
	if extra := string(ctx.QueryArgs().Peek("note")); extra != "" {
		note += ": " + extra
	}
	s.apply(ctx, r.Doc, applyOptions{expect: expect, note: note})
}
