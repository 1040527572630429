package edge

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// Config is everything the edge needs to serve; cmd/etalage fills it from
// flags and ETALAGE_* variables.
type Config struct {
	Secrets        [][]byte // cookie signing keys; the first signs
	AdminToken     string   // bearer token for the admin listener ("" only in dev mode)
	APIKey         string   // key for server-side callers ("" refuses them)
	IdentityKeys   [][]byte // keys that verify identity tokens; none: browsers cannot prove an identity
	CookieName     string   // default "etl"
	CookieSecure   bool
	ConsentNeeded  bool // --consent required
	AllowedOrigins []string
	Demo           bool // serve /demo/ and the visitor's own explain at /demo/api/me
	// DemoPretend lets the demo page pretend a time, a device and a
	// return visit for the browser's own requests (pretend.go); serve
	// sets it with --dev only.
	DemoPretend bool
	Now         func() time.Time

	StoreDeadline  time.Duration // per decide, default 50 ms
	WriteDeadline  time.Duration // per decide that carries events, default 250 ms
	EventDeadline  time.Duration // per events request, default 2 s
	CacheBytes     int64         // profile cache budget, default 256 MiB; negative: no cache
	CacheTTL       time.Duration // profile cache TTL (cross-node staleness bound), default 10 s
	RateLimit      float64       // requests per second per client on public routes; 0 disables
	RateBurst      int
	ClientIPHeader string        // e.g. X-Forwarded-For behind a trusted load balancer
	PollInterval   time.Duration // definitions revision poll, default 500 ms
	ReportFlush    time.Duration // how often the block report's counts go to the store, default 2 s
	MaxBodySize    int           // default 1 MiB
	AnonymousTTL   time.Duration // default 90 days
	KnownTTL       time.Duration // default 400 days

	Triggers  Triggers // webhook delivery (package trigger); nil: definitions with webhooks are refused
	Clock     Clock    // set when the clock is frozen (--now): POST /admin/v1/clock moves it
	AdminAddr string   // the admin listener's address, for the demo definitions' webhook URL
	// AdminWrap, when set, wraps the admin listener's handler: cmd puts
	// the console in front of the admin API this way.
	AdminWrap func(fasthttp.RequestHandler) fasthttp.RequestHandler
	// adminWriteTimeout bounds the writing of an admin answer (default 60
	// s); a streamed export has it per stretch without progress instead.
	adminWriteTimeout time.Duration

	Definitions     []byte // applied at start when set and new to the store; else the stored document, else the demo
	DefinitionsName string // the file Definitions came from, for logs and the revision note
	Logger          *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CookieName == "" {
		c.CookieName = "etl"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.StoreDeadline <= 0 {
		c.StoreDeadline = 50 * time.Millisecond
	}
	if c.WriteDeadline <= 0 {
		c.WriteDeadline = 250 * time.Millisecond
	}
	if c.EventDeadline <= 0 {
		c.EventDeadline = 2 * time.Second
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 256 << 20
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 10 * time.Second
	}
	if c.RateBurst <= 0 {
		c.RateBurst = int(2*c.RateLimit) + 1
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.ReportFlush <= 0 {
		c.ReportFlush = 2 * time.Second
	}
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = 1 << 20
	}
	if c.AnonymousTTL <= 0 {
		c.AnonymousTTL = 90 * 24 * time.Hour
	}
	if c.KnownTTL <= 0 {
		c.KnownTTL = 400 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// defs is one compiled definitions revision; swapped atomically as a whole.
type defs struct {
	set    *rules.Set
	policy *profile.Policy
	doc    []byte
	rev    int64
	// noSeasons stands for absent seasonal profiles, parallel to the seasons.
	noSeasons []*profile.Profile
	// blockJSON holds the pre-encoded answer of each static block.
	blockJSON map[*rules.Block][]byte
}

// Server serves the public and admin listeners.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    profile.Store
	profiles *profile.Service
	signer   *Signer
	tokens   *tokenVerifier
	agents   *agents
	cache    *profileCache
	breaker  *breaker
	limiter  *limiter
	metrics  *metrics
	defs     atomic.Pointer[defs]
	inbox    demoInbox     // the demo webhook receiver's last messages
	applyMu  sync.Mutex    // serialises definitions swaps from PUT and the poller
	counts   countJobs     // exact segment counts running in the background
	blocks   *blockCounter // the block report's counts, flushed to the store

	public, admin *fasthttp.Server
	done          chan struct{}
	shut          chan struct{} // closed once Shutdown stopped the listeners' servers
	wg            sync.WaitGroup
}

// New returns a Server over store, with the definitions loaded: cfg.Definitions
// when given (stored when it differs from the stored one), else the stored
// document, else the demo. It does not listen yet.
func New(ctx context.Context, store profile.Store, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("no cookie signing secret")
	}
	if cfg.Demo && len(cfg.IdentityKeys) == 0 {
		// The demo's sign-in stands for a shop backend, which needs an
		// identity key; this one lives as long as the process and only
		// ever signs example addresses (serveDemoToken).
		k := make([]byte, 32)
		rand.Read(k)
		cfg.IdentityKeys = [][]byte{k}
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		store:   store,
		signer:  NewSigner(cfg.Secrets),
		tokens:  newTokenVerifier(cfg.IdentityKeys, cfg.Now),
		breaker: newBreaker(cfg.Now),
		limiter: newLimiter(cfg.RateLimit, cfg.RateBurst),
		metrics: newMetrics(),
		blocks:  newBlockCounter(),
		done:    make(chan struct{}),
		shut:    make(chan struct{}),
	}
	s.profiles = profile.NewService(s.metrics.watchStore(store), profile.Options{Now: cfg.Now})
	var err error
	s.agents = newAgents()
	if s.cache, err = newProfileCache(cfg.CacheBytes, cfg.CacheTTL, s.profiles); err != nil {
		return nil, fmt.Errorf("profile cache: %w", err)
	}
	if err := s.loadDefinitions(ctx); err != nil {
		s.cache.close()
		return nil, err
	}
	s.public = &fasthttp.Server{
		Handler:                      s.servePublic,
		ErrorHandler:                 s.servePublicParseError,
		ReadBufferSize:               maxHeaderBytes + 4<<10,
		Name:                         "etalage",
		MaxRequestBodySize:           4 * cfg.MaxBodySize,
		ReadTimeout:                  10 * time.Second,
		WriteTimeout:                 10 * time.Second,
		IdleTimeout:                  60 * time.Second,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		Logger:                       slogPrinter{s.log},
	}
	admin := fasthttp.RequestHandler(s.serveAdmin)
	if cfg.AdminWrap != nil {
		admin = cfg.AdminWrap(admin)
	}
	s.admin = &fasthttp.Server{
		Handler:               admin,
		ErrorHandler:          s.serveParseError,
		Name:                  "etalage-admin",
		MaxRequestBodySize:    2 * rulesMaxDoc,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          s.adminWriteTimeout(),
		NoDefaultContentType:  true,
		SecureErrorLogMessage: true,
		Logger:                slogPrinter{s.log},
	}
	return s, nil
}

func (s *Server) adminWriteTimeout() time.Duration {
	return cmp.Or(s.cfg.adminWriteTimeout, 60*time.Second)
}

// rulesMaxDoc bounds a definitions document on the admin listener.
const rulesMaxDoc = 1 << 20

// Serve serves the public and admin listeners until Shutdown, and polls the
// store for definitions changes made on other nodes.
func (s *Server) Serve(public, admin net.Listener) error {
	errc := make(chan error, 2)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pollDefinitions()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.flushBlocks()
	}()
	go func() { errc <- s.public.Serve(public) }()
	go func() { errc <- s.admin.Serve(admin) }()
	// A Shutdown that came before the listeners were being served (a
	// signal right at start) found nothing to stop: closing the listeners
	// ends Serve all the same.
	go func() {
		<-s.shut
		public.Close()
		admin.Close()
	}()
	for range 2 {
		if err := <-errc; err != nil && !s.stopping() {
			return fmt.Errorf("serve: %w", err)
		}
	}
	return nil
}

// stopping reports whether Shutdown has begun.
func (s *Server) stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Shutdown stops accepting connections, waits for in-flight requests (until
// ctx ends), stops the background work and flushes the block report's
// counts. The store is the caller's to close.
func (s *Server) Shutdown(ctx context.Context) error {
	close(s.done)
	err := errors.Join(s.public.ShutdownWithContext(ctx), s.admin.ShutdownWithContext(ctx))
	close(s.shut)
	s.wg.Wait()
	if ferr := s.blocks.flush(ctx, s.profiles); ferr != nil {
		// A store that is down loses the last seconds of counts; the
		// shutdown itself went well.
		s.log.Warn("shutdown: flush the block report", "err", ferr)
	}
	s.cache.close()
	return err
}

// maxHeaderBytes is how much request header the public listener reads: a
// shop on the same domain sends all its own cookies with every request.
// The read buffer adds room for the request line; beyond it fasthttp
// reports a small buffer, answered with 431.
const maxHeaderBytes = 16 << 10

// servePublicParseError is serveParseError with the CORS headers for an
// allowed origin, so that the snippet sees the status. A request whose
// headers could not be read names no origin; with a single allowed origin
// the answer names that one (a browser on another origin still cannot read
// it), with several it cannot say which.
func (s *Server) servePublicParseError(ctx *fasthttp.RequestCtx, err error) {
	s.serveParseError(ctx, err)
	s.cors(ctx)
	if len(ctx.Response.Header.Peek("Access-Control-Allow-Origin")) == 0 && len(s.cfg.AllowedOrigins) == 1 {
		setCORS(&ctx.Response.Header, []byte(s.cfg.AllowedOrigins[0]))
	}
}

// serveParseError answers requests fasthttp could not read, in the JSON
// error shape: bodies over the limit get 413, headers over the read buffer
// 431.
func (s *Server) serveParseError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		s.writeError(ctx, errorf(ECodeHeaders, fmt.Sprintf("request headers over %d bytes", maxHeaderBytes)))
		return
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		s.writeError(ctx, errorf(ECodeTooLarge, fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodySize)))
		return
	}
	s.writeError(ctx, errorf(ECodeInvalid, "malformed HTTP request"))
}

// slogPrinter routes fasthttp's own log lines into slog, filtered: with
// SecureErrorLogMessage fasthttp leaves request contents out of its errors,
// and redactLog removes what is left that could be personal (client
// addresses, quoted values), so no header, cookie, token or address of a
// client reaches the logs.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Warn(redactLog(fmt.Sprintf(format, args...)), "component", "fasthttp")
}

// maxLogLine bounds one redacted fasthttp line.
const maxLogLine = 300

var (
	quotedRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'`)
	// IPv4 and IPv6 addresses, with or without a port.
	addrRe = regexp.MustCompile(`\[?[0-9a-fA-F]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]+\]?(?::\d+)?|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?`)
)

// redactLog removes request contents, quoted values and network addresses
// from a log line.
func redactLog(s string) string {
	if i := strings.Index(s, "contents:"); i >= 0 {
		s = s[:i] + "contents: [redacted]"
	}
	s = quotedRe.ReplaceAllString(s, `"[redacted]"`)
	s = addrRe.ReplaceAllString(s, "[addr]")
	if len(s) > maxLogLine {
		s = s[:maxLogLine] + "…"
	}
	return s
}
