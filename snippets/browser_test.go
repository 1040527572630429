package snippets_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/etalage/etalage/console"
	"github.com/etalage/etalage/edge"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/stretchr/testify/require"
)

// TestBrowser runs the snippet's, the demo's and the console's browser
// tests (snippets/test/*.test.mjs)
// in Debian's headless Chromium against a real etalage on local TCP ports.
// Missing node, npm packages or chromium fail the test; nothing is skipped.
func TestBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: install Node.js (make test installs what it can: .ci/deps)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s not found: install Debian's chromium package (make test does this: .ci/deps)", chromium)
	}
	if _, err := os.Stat(filepath.Join("test", "node_modules", "playwright-core")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = "test"
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in snippets/test (needs npm and the npm registry): %v\n%s", err, out)
		}
	}

	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	srv, err := edge.New(context.Background(), st, edge.Config{
		Secrets:      [][]byte{[]byte("browser-test-secret-0123456789")},
		AdminToken:   "browser-test-token",
		AdminWrap:    console.New(console.Config{SignInToken: "browser-test-token", APIToken: "browser-test-token"}).Wrap,
		CookieSecure: false,
		Demo:         true,
		DemoPretend:  true, // as serve --dev: the demo's Pretend bar
		Now:          func() time.Time { return now },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		// The tests of degraded answers fake them in the page; the real
		// service gets deadlines a busy test machine cannot cross, or a
		// decide answers degraded and the page keeps its defaults.
		StoreDeadline: 5 * time.Second,
		WriteDeadline: 5 * time.Second,
		EventDeadline: 10 * time.Second,
	})
	require.NoError(t, err)
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pub, adm) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		st.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	// The demo's tests run first: the console's apply definitions.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "browser.test.mjs", "console.test.mjs")
	cmd.Dir = "test"
	cmd.Env = append(os.Environ(), "ETALAGE_URL=http://"+pub.Addr().String(), "ETALAGE_ADMIN_URL=http://"+adm.Addr().String(),
		"ETALAGE_ADMIN_TOKEN=browser-test-token", "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("browser tests:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
}
