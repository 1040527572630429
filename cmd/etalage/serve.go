package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/console"
	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/trigger"
)

// Main is the serve command: it parses the configuration, opens the store,
// and runs the edge server until Close. Tests run it on port 0.
type Main struct {
	stdout, stderr io.Writer

	Config     edge.Config
	Listen     string
	AdminAddr  string // the admin listener's address once running
	PublicAddr string // the public listener's address once running
	// LimitMemory sets Go's soft memory limit from the cache budget: the
	// etalage command does; tests running several nodes in one process
	// do not.
	LimitMemory bool

	store    profile.Store
	server   *edge.Server
	triggers *trigger.Engine
	done     chan error
	log      *slog.Logger
}

// NewMain returns a Main writing logs to stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr}
}

// options are the serve flags; each has an ETALAGE_* variable.
type options struct {
	listen, adminListen, store, definitions, secret string
	adminToken, apiKey, consent, allowedOrigins     string
	identityKey                                     string
	webhookKey                                      string
	webhookRetryMin                                 time.Duration
	now, demo, logFormat, cacheSize, clientIPHeader string
	cookieSecure, dev                               bool
	storeDeadline, writeDeadline, cacheTTL          time.Duration
	profileTTL, knownProfileTTL                     time.Duration
	rateLimit                                       float64
}

func (m *Main) flags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("etalage serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.StringVar(&o.listen, "listen", ":8080", "public address")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:8081", "admin address")
	fs.StringVar(&o.store, "store", "embedded:./etalage-data", "embedded:<dir>, redis://host:port/db, redis-cluster://h1:p,h2:p or redis-sentinel://master@h1:p,h2:p")
	fs.StringVar(&o.definitions, "definitions", "", "a definitions document to apply at start (default: the stored one, else the demo)")
	fs.StringVar(&o.secret, "secret", "", "cookie signing keys, comma-separated, the first signs (generated and kept in embedded mode; required with Redis)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token for the admin listener (required unless it is loopback-only and --dev is set; when missing: kept in <data dir>/admin-token in embedded mode, else shown once on the terminal)")
	fs.StringVar(&o.apiKey, "api-key", "", "key for server-side callers: events naming a contact, past ts (none: such calls are refused)")
	fs.StringVar(&o.webhookKey, "webhook-key", "", "Standard Webhooks signing secret (whsec_…) for outgoing webhooks; required when the definitions hold webhooks (generated and kept in embedded mode)")
	fs.DurationVar(&o.webhookRetryMin, "webhook-retry-min", 5*time.Second, "first webhook retry delay; it doubles up to an hour, for 24 hours")
	fs.StringVar(&o.identityKey, "identity-key", "", "keys that verify identity tokens from the shop backend (HS256 JWTs), comma-separated, the first signs (none: browsers cannot prove an identity)")
	fs.BoolVar(&o.cookieSecure, "cookie-secure", true, "set the Secure flag on the visitor cookie")
	fs.StringVar(&o.consent, "consent", "implied", "implied, or required: no behaviour stored before profiling consent")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "CORS origins allowed to call the public API with credentials, comma-separated")
	fs.StringVar(&o.now, "now", "", "freeze the clock at an RFC 3339 time, for demos and tests")
	fs.BoolVar(&o.dev, "dev", false, "development mode: no admin token needed on a loopback admin listener; the demo page may pretend a time and a device")
	fs.StringVar(&o.demo, "demo", "auto", "serve the demo shop at /demo/: true, false, or auto (on with the embedded store)")
	fs.StringVar(&o.logFormat, "log-format", "auto", "text, json, or auto (text on a terminal)")
	fs.DurationVar(&o.storeDeadline, "store-deadline", 50*time.Millisecond, "deadline for reading a profile in a decide; past it the answer is degraded")
	fs.DurationVar(&o.writeDeadline, "write-deadline", 250*time.Millisecond, "deadline for storing the events a decide carries")
	fs.StringVar(&o.cacheSize, "cache-size", "256MiB", "memory budget of the profile cache (0: no cache, every decide reads the store)")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", 10*time.Second, "profile cache TTL: the bound on staleness across nodes")
	fs.Float64Var(&o.rateLimit, "rate-limit", 50, "public requests per second per client (0: no limit); API-key callers are exempt")
	fs.StringVar(&o.clientIPHeader, "client-ip-header", "", "header carrying the client address behind a trusted proxy, e.g. X-Forwarded-For")
	fs.DurationVar(&o.profileTTL, "profile-ttl", 90*24*time.Hour, "anonymous profiles expire after this much inactivity")
	fs.DurationVar(&o.knownProfileTTL, "known-profile-ttl", 400*24*time.Hour, "known contacts' profiles expire after this much inactivity")
	return fs
}

// envName is the ETALAGE_* variable of a flag: --admin-listen is ETALAGE_ADMIN_LISTEN.
func envName(flagName string) string {
	return "ETALAGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags reads args, then fills every flag not given from its variable.
// A bad flag is one line (the flag package would print every flag after
// it); -h prints them all.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usagef("%s=%q: %v", envName(f.Name), v, serr)
			}
		}
	})
	return err
}

// parseQuiet parses args without the flag package's own error output: a
// one-line usage error, or the flag list on -h.
func parseQuiet(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usagef("%v (%s -h lists the flags)", err, fs.Name())
	}
	return nil
}

// Run parses args, opens the store and starts serving; it returns once the
// listeners are up.
func (m *Main) Run(ctx context.Context, args []string) error {
	var o options
	if err := parseFlags(m.flags(&o), args, os.Getenv); err != nil {
		return err
	}
	log, err := newLogger(o.logFormat, m.stderr)
	if err != nil {
		return err
	}
	m.log = log
	cfg, err := m.config(&o)
	if err != nil {
		return err
	}
	if m.LimitMemory {
		tuneGC(os.Getenv, cfg.CacheBytes)
	}
	kind, target, _ := strings.Cut(o.store, ":")
	dir := ""
	switch kind {
	case "embedded":
		dir = target
		if dir == "" {
			return usagef("--store embedded:<dir>: the directory is missing")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		if len(cfg.Secrets) == 0 {
			if cfg.Secrets, err = keptSecret(filepath.Join(dir, "cookie-secret")); err != nil {
				return err
			}
		}
		st, err := embeddedstore.Open(dir)
		if err != nil {
			return fmt.Errorf("open embedded store %s: %w", dir, err)
		}
		m.store = st
	case "redis", "rediss", "redis-cluster", "redis-sentinel":
		if len(cfg.Secrets) == 0 {
			return usagef("--secret is required with a Redis store (all nodes must share it)")
		}
		st, err := redisstore.Open(ctx, o.store, redisstore.Options{})
		if err != nil {
			return fmt.Errorf("open redis store: %w", err)
		}
		m.store = st
	default:
		return usagef("--store %q: use embedded:<dir>, redis://, redis-cluster:// or redis-sentinel://", o.store)
	}
	if o.demo == "auto" {
		cfg.Demo = kind == "embedded"
	}
	// The demo page's "pretend it is Saturday / on a phone" is for
	// trying the demo, never for a shop: development mode only.
	cfg.DemoPretend = cfg.Demo && o.dev
	if cfg.AdminToken == "" && !(o.dev && isLoopback(o.adminListen)) {
		if cfg.AdminToken, err = m.generatedAdminToken(dir); err != nil {
			m.store.Close()
			m.store = nil
			return err
		}
	}
	// The console signs in with the admin token; in development mode, with
	// no admin token, with one generated for this run and printed below.
	consoleToken := cfg.AdminToken
	if consoleToken == "" {
		consoleToken = randomHex(16)
	}
	cons := console.New(console.Config{SignInToken: consoleToken, APIToken: cfg.AdminToken})
	cfg.AdminWrap = cons.Wrap
	signer, err := m.webhookSigner(o.webhookKey, dir)
	if err != nil {
		m.store.Close()
		m.store = nil
		return err
	}
	m.triggers = trigger.New(trigger.Config{
		Store:    m.store.(profile.TriggerStore),
		Signer:   signer,
		Now:      cfg.Now,
		Logger:   log,
		RetryMin: o.webhookRetryMin,
	})
	cfg.Triggers = m.triggers
	// Listening comes first: the demo definitions' webhook points at the
	// admin listener's real address.
	pub, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	adm, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		pub.Close()
		return fmt.Errorf("listen %s: %w", o.adminListen, err)
	}
	m.PublicAddr, m.AdminAddr = pub.Addr().String(), adm.Addr().String()
	cfg.AdminAddr = m.AdminAddr
	m.Config = cfg
	srv, err := edge.New(ctx, m.store, cfg)
	if err != nil {
		pub.Close()
		adm.Close()
		return err
	}
	m.server = srv
	m.triggers.Start(srv.Current, srv.Profiles())
	m.done = make(chan error, 1)
	go func() { m.done <- srv.Serve(pub, adm) }()
	log.Info("etalage serving", "public", m.PublicAddr, "admin", m.AdminAddr, "store", kind, "demo", cfg.Demo)
	if cfg.AdminToken == "" {
		log.Info("console (development mode: sign in with this console_token)", "url", "http://"+displayAddr(m.AdminAddr)+"/admin/", "console_token", consoleToken)
	} else {
		log.Info("console (sign in with the admin token)", "url", "http://"+displayAddr(m.AdminAddr)+"/admin/")
	}
	if cfg.Demo {
		log.Info("demo shop", "url", "http://"+displayAddr(m.PublicAddr)+"/demo/")
	}
	return nil
}

// config turns flag values into an edge.Config.
func (m *Main) config(o *options) (edge.Config, error) {
	cfg := edge.Config{
		AdminToken:     o.adminToken,
		APIKey:         o.apiKey,
		CookieSecure:   o.cookieSecure,
		StoreDeadline:  o.storeDeadline,
		WriteDeadline:  o.writeDeadline,
		CacheTTL:       o.cacheTTL,
		RateLimit:      o.rateLimit,
		ClientIPHeader: o.clientIPHeader,
		AnonymousTTL:   o.profileTTL,
		KnownTTL:       o.knownProfileTTL,
		Demo:           o.demo == "true",
		Logger:         m.log,
	}
	switch o.demo {
	case "true", "false", "auto":
	default:
		return cfg, usagef("--demo %q: use true, false or auto", o.demo)
	}
	switch o.consent {
	case "implied":
	case "required":
		cfg.ConsentNeeded = true
	default:
		return cfg, usagef("--consent %q: use implied or required", o.consent)
	}
	if o.secret != "" {
		for _, k := range strings.Split(o.secret, ",") {
			if len(k) < 16 {
				return cfg, usagef("--secret: each key needs at least 16 characters")
			}
			cfg.Secrets = append(cfg.Secrets, []byte(k))
		}
	}
	if o.identityKey != "" {
		for _, k := range strings.Split(o.identityKey, ",") {
			if len(k) < 32 {
				return cfg, usagef("--identity-key: each key needs at least 32 characters (HS256 wants 256 bits)")
			}
			cfg.IdentityKeys = append(cfg.IdentityKeys, []byte(k))
		}
	}
	if o.allowedOrigins != "" {
		for _, origin := range strings.Split(o.allowedOrigins, ",") {
			origin = strings.TrimSpace(origin)
			if origin == "*" || !strings.Contains(origin, "://") {
				return cfg, usagef("--allowed-origins: %q is not an origin like https://shop.nl (a wildcard would expose profiles to every site)", origin)
			}
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, strings.TrimRight(origin, "/"))
		}
	}
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return cfg, usagef("--now %q: an RFC 3339 time like 2026-11-24T12:00:00+01:00", o.now)
		}
		c := newFrozenClock(t)
		cfg.Now, cfg.Clock = c.Now, c
	}
	if o.webhookRetryMin <= 0 {
		return cfg, usagef("--webhook-retry-min must be positive")
	}
	size, err := parseBytes(o.cacheSize)
	if err != nil {
		return cfg, usagef("--cache-size %q: %v", o.cacheSize, err)
	}
	cfg.CacheBytes = size
	if size == 0 {
		cfg.CacheBytes = -1 // --cache-size 0: every decide reads the store
	}
	if o.definitions != "" {
		doc, err := os.ReadFile(o.definitions)
		if err != nil {
			return cfg, usagef("--definitions: %v", err)
		}
		cfg.Definitions = doc
		cfg.DefinitionsName = o.definitions
	}
	for name, d := range map[string]time.Duration{"store-deadline": o.storeDeadline, "write-deadline": o.writeDeadline, "cache-ttl": o.cacheTTL, "profile-ttl": o.profileTTL, "known-profile-ttl": o.knownProfileTTL} {
		if d <= 0 {
			return cfg, usagef("--%s must be positive", name)
		}
	}
	if o.rateLimit < 0 {
		return cfg, usagef("--rate-limit must not be negative")
	}
	return cfg, nil
}

// Close shuts the server down gracefully (in-flight requests finish) and
// closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.server.Shutdown(ctx))
		cancel()
		<-m.done
		m.server = nil
	}
	if m.triggers != nil {
		m.triggers.Close()
		m.triggers = nil
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	if m.log != nil {
		m.log.Info("etalage stopped")
	}
	return errors.Join(errs...)
}

// webhookSigner returns the signer of outgoing webhooks: from
// --webhook-key, else in embedded mode a key generated once and kept in the
// data directory (like the cookie key), else none (definitions with
// webhooks are then refused).
func (m *Main) webhookSigner(key, dir string) (*trigger.Signer, error) {
	if key == "" && dir != "" {
		path := filepath.Join(dir, "webhook-key")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			key = strings.TrimSpace(string(b))
		case os.IsNotExist(err):
			key = trigger.NewSecret()
			if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write webhook key: %w", err)
			}
			m.log.Info("generated a webhook signing key; receivers verify with it", "file", path)
		default:
			return nil, fmt.Errorf("read webhook key: %w", err)
		}
	}
	if key == "" {
		return nil, nil
	}
	s, err := trigger.NewSigner(key)
	if err != nil {
		return nil, usagef("--webhook-key: %v", err)
	}
	return s, nil
}

// keptSecret reads the cookie key kept in the embedded store's directory,
// generating it on first start, so cookies survive restarts.
func keptSecret(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return [][]byte{[]byte(strings.TrimSpace(string(b)))}, nil
	}
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read cookie secret: %w", err)
	}
	k := randomHex(32)
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write cookie secret: %w", err)
	}
	return [][]byte{[]byte(k)}, nil
}

// generatedAdminToken stands in for a missing --admin-token. The token is
// a secret, so it never goes into the logs (which are often shipped
// elsewhere as JSON): in embedded mode it is kept in <data dir>/admin-token
// (mode 0600, reused on restart); otherwise it is shown once on the
// terminal, and without a terminal --admin-token is required.
func (m *Main) generatedAdminToken(dir string) (string, error) {
	if dir != "" {
		path := filepath.Join(dir, "admin-token")
		k, err := keptSecret(path)
		if err != nil {
			return "", fmt.Errorf("admin token: %w", err)
		}
		m.log.Warn("no --admin-token given: using the one kept in the data directory", "file", path)
		return string(k[0]), nil
	}
	if !isTerminal(m.stderr) {
		return "", usagef("--admin-token (or ETALAGE_ADMIN_TOKEN) is required: there is no data directory to keep a generated one in and no terminal to show it on")
	}
	tok := randomHex(24)
	fmt.Fprintf(m.stderr, "\nNo --admin-token given. The admin token for this run (shown once, not logged):\n\n    %s\n\n", tok)
	return tok, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "localhost:" + port
	}
	return addr
}

// parseBytes reads sizes like 256MiB, 1GiB, 500MB or a plain byte count.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("a size like 256MiB, or 0")
	}
	return n * mult, nil
}

// newLogger returns a structured logger: text on a terminal, JSON otherwise.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usagef("--log-format %q: use text, json or auto", format)
}

// gcPercent is the GOGC that serve runs with unless GOGC is set. A decide
// allocates a few kilobytes, and the live heap beside a cache is small, so
// with GOGC=100 the collector ran several times a second at load; with
// 400 it runs a quarter as often. The heap stays bounded: by the soft
// memory limit when there is a cache, and at five times a small live heap
// when there is none.
const gcPercent = 400

// tuneGC sets the collector's goal and Go's soft memory limit from the
// cache budget; GOGC and GOMEMLIMIT in the environment win.
func tuneGC(getenv func(string) string, cacheBytes int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" && cacheBytes > 0 {
		// Without a limit the collector lets the heap grow to GOGC
		// percent over the live cache before it collects.
		debug.SetMemoryLimit(edge.MemoryLimit(cacheBytes))
	}
}
