package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

const k6Version = "v1.4.2"

func findK6() (string, error) {
	if p, err := exec.LookPath("k6"); err == nil {
		return p, nil
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		out, _ := exec.Command("go", "env", "GOPATH").Output()
		gobin = filepath.Join(strings.TrimSpace(string(out)), "bin")
	}
	p := filepath.Join(gobin, "k6")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "installing k6 %s from the Go module proxy (a few minutes)\n", k6Version)
	cmd := exec.Command("go", "install", "go.k6.io/k6@"+k6Version)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install go.k6.io/k6@%s: %w", k6Version, err)
	}
	return p, nil
}

// k6Target is one k6 scenario script.
type k6Target struct {
	key, name, script, base, scenario string
	perReq                            int
}

// runK6 runs each scenario once at a fixed arrival rate over at most 8
// connections: below the generator's own saturation, so the latency is the
// server's and the thresholds in each script decide pass or fail.
func runK6(k6, work string, o options, hello string, servers map[string]server) ([]row, error) {
	targets := []k6Target{
		{key: "hello", name: "fasthttp hello (baseline)", script: "hello.js", base: hello, scenario: "hello"},
		{key: "decide_warm", name: "decide, warm (cache), embedded", script: "decide_warm.js", base: servers["embedded"].public, scenario: "decide"},
		{key: "decide_cold", name: "decide, cold (Redis every request)", script: "decide_cold.js", base: servers["redis-nocache"].public, scenario: "decide"},
		{key: "events", name: "events into Redis, batches of 5", script: "events.js", base: servers["redis"].public, scenario: "ingest", perReq: 5},
		{key: "mixed", name: "mixed shop traffic, Redis", script: "mixed.js", base: servers["redis"].public, scenario: "shop"},
	}
	const vus = 8
	var rows []row
	for i, t := range targets {
		if !o.wants(t.key) {
			continue
		}
		summary := filepath.Join(work, fmt.Sprintf("k6-summary-%d.json", i))
		fmt.Fprintf(os.Stderr, "k6: %s at %d/s\n", t.name, o.k6Rate)
		cmd := pin(1, k6, "run", "--quiet", "--no-color", "--summary-export", summary,
			"--summary-trend-stats", "avg,med,p(95),p(99),max",
			"-e", "BASE="+t.base, "-e", "VUS="+strconv.Itoa(vus), "-e", "DURATION="+strconv.Itoa(int(o.duration.Seconds()))+"s",
			"-e", "P99_MS=15", "-e", "RATE="+strconv.Itoa(o.k6Rate),
			filepath.Join("loadtest", "k6", t.script))
		log, _ := os.Create(summary + ".log")
		cmd.Stdout, cmd.Stderr = log, log
		err := cmd.Run()
		log.Close()
		thresholdsOK, err := k6Passed(err, summary+".log")
		if err != nil {
			return nil, fmt.Errorf("k6 %s: %w", t.script, err)
		}
		r, err := parseK6(summary, t, o)
		if err != nil {
			return nil, err
		}
		r.failed = !thresholdsOK
		r.note = "thresholds pass"
		if !thresholdsOK {
			r.note = "thresholds FAILED"
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// k6Passed tells how a k6 run ended: its thresholds passed, or failed
// (exit code 99), or k6 itself failed (the error then carries its log).
func k6Passed(err error, log string) (bool, error) {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 99 {
		return false, nil
	}
	if err != nil {
		out, _ := os.ReadFile(log)
		return false, fmt.Errorf("%w\n%s", err, out)
	}
	return true, nil
}

func parseK6(path string, t k6Target, o options) (row, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return row{}, fmt.Errorf("k6 summary: %w", err)
	}
	var raw struct {
		Metrics map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return row{}, fmt.Errorf("k6 summary %s: %w", path, err)
	}
	// Values are numbers, except the thresholds each metric carries.
	m := func(name, k string) float64 {
		f, _ := raw.Metrics[name][k].(float64)
		return f
	}
	dur := "http_req_duration{scenario:" + t.scenario + "}"
	r := row{key: t.key, name: t.name, generator: "k6", conns: fmt.Sprintf("8 @ %d/s", o.k6Rate), perReq: t.perReq,
		rps: m("http_reqs{scenario:"+t.scenario+"}", "count") / o.duration.Seconds(),
		p50: m(dur, "med"), p95: m(dur, "p(95)"), p99: m(dur, "p(99)"), errors: m("http_req_failed", "value")}
	if c := m("checks", "passes") + m("checks", "fails"); c > 0 && m("checks", "fails")/c > r.errors {
		r.errors = m("checks", "fails") / c
	}
	return r, nil
}
