package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "a subcommand is required"},
		{"unknown subcommand", []string{"frobnicate"}, "unknown subcommand"},
		{"unknown flag", []string{"serve", "--nope"}, "flag provided but not defined"},
		{"bad duration", []string{"serve", "--store-deadline", "soon"}, "invalid value"},
		{"bad consent", []string{"serve", "--consent", "maybe"}, "--consent"},
		{"bad store", []string{"serve", "--store", "mysql://x"}, "--store"},
		{"short secret", []string{"serve", "--secret", "short"}, "at least 16"},
		{"redis without secret", []string{"serve", "--store", "redis://127.0.0.1:1/0"}, "--secret is required"},
		{"bad now", []string{"serve", "--now", "tomorrow"}, "--now"},
		{"wildcard origin", []string{"serve", "--allowed-origins", "*"}, "not an origin"},
		{"check without file", []string{"check"}, "one file"},
		{"apply without file", []string{"apply"}, "-f FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			require.Error(t, err)
			if len(tt.args) > 0 {
				assert.NotContains(t, errb.String(), "Usage of", "no list of every flag after a mistake")
			}
			assert.True(t, errors.Is(err, errUsage), "%v is a usage error", err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, 2, exitCode(err, &errb))
			assert.NotContains(t, strings.TrimSpace(err.Error()), "\n", "one line")
		})
	}
}

func TestUsageListsEverySubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), nil, &out, &errb)
	assert.Equal(t, 2, exitCode(err, &bytes.Buffer{}))
	for _, sub := range []string{"serve", "check", "apply", "health"} {
		assert.Contains(t, errb.String(), "etalage "+sub)
	}
}

func TestCheckReportsLinesAndWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o600))
		return p
	}
	tests := []struct {
		name, doc string
		code      int
		want      []string
		not       []string
	}{
		{"syntax", "segments:\n  - id: a\n\t  rule: x\n", 1, []string{"syntax.yaml:2: not valid YAML"}, []string{": :"}},
		{"negative", "segments:\n  - id: a\n    rule: {event: purchase, count: {gte: -1}}\n", 1, []string{"negative.yaml:3: segments[0].rule.count.gte: a count is never negative"}, nil},
		{"typo", "fields: [{name: shoe_size, type: number}]\nsegments:\n  - id: a\n    rule: {field: profile.shoe_sise, eq: 45}\n", 0,
			[]string{"typo.yaml:4: warning: segments[0].rule.field: profile.shoe_sise", "did you mean profile.shoe_size?", "ok, with 1 warning(s)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := write(tt.name+".yaml", tt.doc)
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"check", file}, &out, &errb)
			assert.Equal(t, tt.code, exitCode(err, &errb), out.String())
			for _, w := range tt.want {
				assert.Contains(t, out.String(), w)
			}
			for _, w := range tt.not {
				assert.NotContains(t, out.String(), w)
			}
		})
	}
}

func TestEnvironmentFillsFlags(t *testing.T) {
	var o options
	m := NewMain(os.Stdout, os.Stderr)
	fs := m.flags(&o)
	env := map[string]string{"ETALAGE_ADMIN_LISTEN": "127.0.0.1:9999", "ETALAGE_LISTEN": ":1111", "ETALAGE_COOKIE_SECURE": "false"}
	require.NoError(t, parseFlags(fs, []string{"--listen", ":2222"}, func(k string) string { return env[k] }))
	assert.Equal(t, "127.0.0.1:9999", o.adminListen, "from the environment")
	assert.Equal(t, ":2222", o.listen, "a flag beats its variable")
	assert.False(t, o.cookieSecure)

	fs = m.flags(&o)
	err := parseFlags(fs, nil, func(k string) string {
		if k == "ETALAGE_RATE_LIMIT" {
			return "lots"
		}
		return ""
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ETALAGE_RATE_LIMIT")
	assert.True(t, errors.Is(err, errUsage))
	assert.Equal(t, "ETALAGE_ADMIN_LISTEN", envName("admin-listen"))
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"serve", "-h"}, &out, &errb)
	assert.True(t, errors.Is(err, flag.ErrHelp))
	assert.Equal(t, 0, exitCode(err, &errb))
	assert.Contains(t, errb.String(), "-admin-listen")
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("blocks:\n  - {id: a, slot: home-hero, html: hi}\n"), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("segments:\n  - id: x\n    parent: nope\n    rule: {interest: y}\n  - id: x\n    rule: {bogus: 1}\n"), 0o600))

	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"check", good}, &out, &errb))
	assert.Contains(t, out.String(), "ok")

	out.Reset()
	err := run(context.Background(), []string{"check", bad}, &out, &errb)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err, &errb))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.GreaterOrEqual(t, len(lines), 2, "every problem, each on its own line with its path: %s", out.String())
	assert.Contains(t, out.String(), "segments[")
}

// TestServeInProcess runs the whole program on port 0, the way main does,
// and applies definitions through `etalage apply`.
func TestServeInProcess(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	m := NewMain(os.Stdout, &logs)
	require.NoError(t, m.Run(context.Background(), []string{
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", "embedded:" + dir,
		"--admin-token", "tok-0123456789", "--cookie-secure=false",
	}))
	defer m.Close()

	resp, err := http.Get("http://" + m.PublicAddr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	resp, err = http.Get("http://" + m.PublicAddr + "/demo/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "the demo is on with the embedded store")

	defs := filepath.Join(dir, "defs.yaml")
	require.NoError(t, os.WriteFile(defs, []byte("blocks:\n  - {id: applied, slot: home-hero, html: hi}\n"), 0o600))
	var out, errb bytes.Buffer
	err = run(context.Background(), []string{"apply", "-f", defs, "--admin-url", "http://" + m.AdminAddr, "--admin-token", "tok-0123456789"}, &out, &errb)
	require.NoError(t, err, errb.String())
	assert.Contains(t, out.String(), "revision 1")

	out.Reset()
	err = run(context.Background(), []string{"apply", "-f", defs, "--admin-url", "http://" + m.AdminAddr, "--admin-token", "tok-0123456789"}, &out, &errb)
	require.NoError(t, err, errb.String())
	assert.Contains(t, out.String(), "unchanged, revision 1 is running")

	require.NoError(t, os.WriteFile(defs, []byte("blocks:\n  - {id: applied2, slot: home-hero, html: hi}\n"), 0o600))
	err = run(context.Background(), []string{"apply", "-f", defs, "--if-match", "7", "--note", "n", "--admin-url", "http://" + m.AdminAddr, "--admin-token", "tok-0123456789"}, &out, &errb)
	require.Error(t, err, "revision 7 is not the running one")
	assert.Contains(t, err.Error(), "409")

	err = run(context.Background(), []string{"apply", "-f", defs, "--admin-url", "http://" + m.AdminAddr, "--admin-token", "wrong"}, &out, &errb)
	require.Error(t, err)

	_, err = os.Stat(filepath.Join(dir, "cookie-secret"))
	assert.NoError(t, err, "the cookie secret is kept in the data directory")
	require.NoError(t, m.Close())
}

// TestGeneratedAdminTokenNeverLogged: without --admin-token the generated
// token is kept in a 0600 file in the data directory, never in the logs;
// with no data directory and no terminal the flag is required.
func TestGeneratedAdminTokenNeverLogged(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	m := NewMain(os.Stdout, &logs)
	require.NoError(t, m.Run(context.Background(), []string{
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", "embedded:" + dir, "--log-format", "json",
	}))
	defer m.Close()
	path := filepath.Join(dir, "admin-token")
	st, err := os.Stat(path)
	require.NoError(t, err, "the generated token is kept in the data directory")
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	tok := strings.TrimSpace(string(raw))
	require.GreaterOrEqual(t, len(tok), 32)
	assert.NotContains(t, logs.String(), tok, "the token never reaches the logs")
	assert.Contains(t, logs.String(), path, "the log says where it is")

	req, _ := http.NewRequest("GET", "http://"+m.AdminAddr+"/admin/v1/definitions", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "the kept token opens the admin API")
	require.NoError(t, m.Close())

	addr := redistest.Server(t)
	var errb bytes.Buffer
	m = NewMain(os.Stdout, &errb)
	err = m.Run(context.Background(), []string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", "redis://" + addr + "/0", "--secret", "main-test-secret-0123456789"})
	require.Error(t, err, "no data directory, no terminal: --admin-token is required")
	assert.Contains(t, err.Error(), "--admin-token")
	m.Close()
}

// TestHealthFollowsListen: the image's HEALTHCHECK runs `etalage health`
// without a URL, which asks the address ETALAGE_LISTEN gives.
func TestHealthFollowsListen(t *testing.T) {
	for listen, want := range map[string]string{
		"":               "http://127.0.0.1:8080/healthz",
		":9090":          "http://127.0.0.1:9090/healthz",
		"0.0.0.0:7000":   "http://127.0.0.1:7000/healthz",
		"[::]:7001":      "http://127.0.0.1:7001/healthz",
		"10.1.2.3:8088":  "http://10.1.2.3:8088/healthz",
		"localhost:6000": "http://localhost:6000/healthz",
	} {
		assert.Equal(t, want, healthURL(listen), listen)
	}
	m := NewMain(os.Stdout, &bytes.Buffer{})
	require.NoError(t, m.Run(context.Background(), []string{
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--store", "embedded:" + t.TempDir(), "--admin-token", "tok-0123456789",
	}))
	defer m.Close()
	_, port, _ := net.SplitHostPort(m.PublicAddr)
	t.Setenv("ETALAGE_LISTEN", ":"+port)
	assert.NoError(t, runHealth(context.Background(), nil), "healthy on the moved port")
	t.Setenv("ETALAGE_LISTEN", ":1")
	assert.Error(t, runHealth(context.Background(), nil))
}

// TestImageCarriesNoSecrets checks the container files: the build context
// leaves out the data directory (the generated cookie secret), node_modules
// and .git; the HEALTHCHECK hard-codes no port; compose gives Redis a
// maxmemory with a policy that evicts only keys with a TTL.
func TestImageCarriesNoSecrets(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		require.NoError(t, err, name)
		return string(b)
	}
	ignore := strings.Fields(read(".dockerignore"))
	for _, must := range []string{"etalage-data/", "**/node_modules/", ".git/", "**/cookie-secret", "**/admin-token"} {
		assert.Contains(t, ignore, must)
	}
	df := read("Dockerfile")
	for _, line := range strings.Split(df, "\n") {
		if strings.HasPrefix(line, "HEALTHCHECK") {
			assert.NotContains(t, line, "8080", "the check follows ETALAGE_LISTEN")
			assert.True(t, strings.HasSuffix(strings.TrimSpace(line), `"health"]`), line)
		}
	}
	compose := read("docker-compose.yml")
	assert.Contains(t, compose, `"--maxmemory", "256mb"`)
	assert.Contains(t, compose, `"--maxmemory-policy", "volatile-ttl"`)
}
