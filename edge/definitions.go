package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// loadDefinitions installs the definitions at start: the configured
// document (stored when it differs from the stored one), else the stored
// one, else the demo. A store that cannot be reached at start is not fatal:
// the poller picks the stored document up when the store comes back.
func (s *Server) loadDefinitions(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, rev, err := s.store.Definitions(sctx)
	switch {
	case errors.Is(err, profile.ErrNotFound):
		stored, rev = nil, 0
	case err != nil:
		s.log.Warn("read stored definitions; starting without them", "err", err)
		stored, rev = nil, 0
	}
	if s.cfg.Definitions != nil {
		set, err := rules.Compile(s.cfg.Definitions)
		if err != nil {
			return fmt.Errorf("definitions: %w", err)
		}
		if !bytes.Equal(stored, s.cfg.Definitions) {
			if nrev, perr := s.store.PutDefinitions(sctx, s.cfg.Definitions); perr == nil {
				rev = nrev
			} else {
				s.log.Warn("store definitions given at start", "err", perr)
			}
		}
		s.swap(set, s.cfg.Definitions, rev)
		return nil
	}
	if stored != nil {
		set, err := rules.Compile(stored)
		if err == nil {
			s.swap(set, stored, rev)
			return nil
		}
		s.log.Error("stored definitions do not compile; using the demo", "revision", rev, "err", err)
	}
	demo := rules.Demo()
	set, err := rules.Compile(demo)
	if err != nil {
		return fmt.Errorf("demo definitions: %w", err)
	}
	s.swap(set, demo, 0)
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
	s.defs.Store(&defs{set: set, policy: pol, doc: doc, rev: rev, noSeasons: make([]*profile.Profile, len(pol.Seasons)), blockJSON: encodeStaticBlocks(set)})
	s.metrics.definitionsSwaps.Inc()
}

// applyDefinitions validates doc as a whole, stores it as the next revision
// and installs it. A rejected document changes nothing.
func (s *Server) applyDefinitions(ctx context.Context, doc []byte) (int64, error) {
	set, err := rules.Compile(doc)
	if err != nil {
		return 0, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	rev, err := s.store.PutDefinitions(ctx, doc)
	if err != nil {
		return 0, fmt.Errorf("store definitions: %w", err)
	}
	if cur := s.defs.Load(); cur == nil || cur.rev < rev {
		s.swap(set, doc, rev)
	}
	s.log.Info("definitions applied", "revision", rev)
	return rev, nil
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
		set, err := rules.Compile(doc)
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

// serveDefinitions answers GET and PUT /admin/v1/definitions.
func (s *Server) serveDefinitions(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsGet():
		d := s.defs.Load()
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"revision": d.rev, "document": string(d.doc)})
	case ctx.IsPut():
		doc := append([]byte(nil), ctx.PostBody()...)
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rev, err := s.applyDefinitions(actx, doc)
		cancel()
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"revision": rev})
	default:
		s.methodNotAllowed(ctx, "GET, PUT")
	}
}
