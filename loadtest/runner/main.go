// Command runner is `make loadtest`: it builds etalage and the hello
// baseline, starts them pinned to CPU 0 (with a throwaway Redis), runs the
// k6 scenarios pinned to CPU 1, and prints one table with each target's
// throughput as a ratio to the baseline measured in the same run.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const k6Version = "v1.4.2"

type target struct {
	name, script, base, scenario string
	vus, rate                    int // rate > 0: fixed arrival rate (latency rows)
	eventsPerReq                 int
}

type result struct {
	target
	rps, p50, p95, p99 float64
	errors             float64
	thresholdsOK       bool
}

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each k6 run")
	rounds := flag.Int("rounds", 1, "interleaved rounds; the table shows each figure's median")
	only := flag.String("only", "", "comma-separated targets to run (hello always runs)")
	keep := flag.Bool("keep", false, "keep the work directory (logs, k6 summaries)")
	flag.Parse()
	if err := run(*duration, *rounds, *only, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type procs struct{ list []*exec.Cmd }

func (p *procs) stop() {
	for _, c := range p.list {
		if c.Process != nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, c := range p.list {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
}

// pin runs a command on one CPU when the machine has two or more and
// taskset is there; the server and the load generator then do not compete.
func pin(cpu int, name string, args ...string) *exec.Cmd {
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		return exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (p *procs) start(cmd *exec.Cmd, log string) error {
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p.list = append(p.list, cmd)
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r, err := http.Get(url)
		if err == nil {
			r.Body.Close()
			if r.StatusCode < 500 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}

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

func run(duration time.Duration, rounds int, only string, keep bool) error {
	k6, err := findK6()
	if err != nil {
		return err
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: install Debian's redis-server (make test installs it: .ci/deps)")
	}
	work, err := os.MkdirTemp("", "etalage-loadtest-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	for _, b := range [][2]string{{"etalage", "./cmd/etalage"}, {"hello", "./loadtest/hello"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(work, b[0]), b[1])
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b[1], err)
		}
	}
	var ps procs
	defer ps.stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; ps.stop(); os.Exit(130) }()

	// Redis shares the load generator's CPU: it stands for the store
	// server a production edge node talks to over the network.
	redisAddr := freeAddr()
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	if err := ps.start(pin(1, redisBin, "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work), filepath.Join(work, "redis.log")); err != nil {
		return err
	}
	helloAddr := freeAddr()
	if err := ps.start(pin(0, filepath.Join(work, "hello"), "-listen", helloAddr), filepath.Join(work, "hello.log")); err != nil {
		return err
	}
	servers := map[string]string{}
	for _, s := range []struct{ name, store, cache string }{
		{"embedded", "embedded:" + filepath.Join(work, "data"), "256MiB"},
		{"redis", "redis://" + redisAddr + "/0", "256MiB"},
		{"redis-nocache", "redis://" + redisAddr + "/1", "0"},
	} {
		pub, adm := freeAddr(), freeAddr()
		args := []string{"serve", "--listen", pub, "--admin-listen", adm, "--store", s.store, "--cache-size", s.cache,
			"--secret", "loadtest-secret-0123456789abcdef", "--dev", "--cookie-secure=false", "--rate-limit", "0",
			"--log-format", "json", "--demo", "false", "--now", "2026-11-24T12:00:00Z"}
		if err := ps.start(pin(0, filepath.Join(work, "etalage"), args...), filepath.Join(work, s.name+".log")); err != nil {
			return err
		}
		if err := waitHTTP("http://" + adm + "/readyz"); err != nil {
			return fmt.Errorf("etalage on %s: %w (log in %s)", s.store, err, filepath.Join(work, s.name+".log"))
		}
		servers[s.name] = "http://" + pub
	}
	if err := waitHTTP("http://" + helloAddr + "/"); err != nil {
		return err
	}

	dur := strconv.Itoa(int(duration.Seconds())) + "s"
	var targets []target
	for _, vus := range []int{64, 8} {
		targets = append(targets,
			target{name: "fasthttp hello (baseline)", script: "hello.js", base: "http://" + helloAddr, scenario: "hello", vus: vus},
			target{name: "decide, warm (cache), embedded", script: "decide_warm.js", base: servers["embedded"], scenario: "decide", vus: vus},
			target{name: "decide, cold (Redis every request)", script: "decide_cold.js", base: servers["redis-nocache"], scenario: "decide", vus: vus},
			target{name: "events into Redis, batches of 5", script: "events.js", base: servers["redis"], scenario: "ingest", vus: vus, eventsPerReq: 5},
			target{name: "mixed shop traffic, Redis", script: "mixed.js", base: servers["redis"], scenario: "shop", vus: vus},
		)
	}
	// Latency at a fixed rate well below k6's own limit, 8 connections.
	for _, t := range []target{
		{name: "fasthttp hello (baseline)", script: "hello.js", base: "http://" + helloAddr, scenario: "hello"},
		{name: "decide, warm (cache), embedded", script: "decide_warm.js", base: servers["embedded"], scenario: "decide"},
		{name: "decide, cold (Redis every request)", script: "decide_cold.js", base: servers["redis-nocache"], scenario: "decide"},
	} {
		t.vus, t.rate = 8, 2000
		targets = append(targets, t)
	}
	if only != "" {
		keepT := targets[:0]
		for _, t := range targets {
			if t.scenario == "hello" || strings.Contains(only, strings.TrimSuffix(t.script, ".js")) {
				keepT = append(keepT, t)
			}
		}
		targets = keepT
	}
	all := map[string][]result{}
	for round := 0; round < rounds; round++ {
		for i, t := range targets {
			summary := filepath.Join(work, fmt.Sprintf("summary-%d-%d.json", round, i))
			fmt.Fprintf(os.Stderr, "round %d: %s, %s\n", round+1, t.name, connsOf(t))
			cmd := pin(1, k6, "run", "--quiet", "--no-color", "--summary-export", summary,
				"--summary-trend-stats", "avg,med,p(95),p(99),max",
				"-e", "BASE="+t.base, "-e", "VUS="+strconv.Itoa(t.vus), "-e", "DURATION="+dur, "-e", "P99_MS="+p99Limit(t.vus),
				"-e", "RATE="+rateEnv(t.rate),
				filepath.Join("loadtest", "k6", t.script))
			log, _ := os.Create(summary + ".log")
			cmd.Stdout, cmd.Stderr = log, log
			err := cmd.Run()
			log.Close()
			thresholdsOK := true
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == 99 {
				thresholdsOK = false
			} else if err != nil {
				out, _ := os.ReadFile(summary + ".log")
				return fmt.Errorf("k6 %s: %w\n%s", t.script, err, out)
			}
			r, err := parse(summary, t, duration)
			if err != nil {
				return err
			}
			r.thresholdsOK = thresholdsOK
			all[keyOf(t)] = append(all[keyOf(t)], r)
		}
	}
	print(os.Stdout, targets, all, rounds, duration)
	return nil
}

// p99Limit is the latency threshold of a run: with 64 connections the
// single k6 core is saturated and its own queueing dominates; with 8 the
// figure is closer to the server's.
func p99Limit(vus int) string {
	if vus > 8 {
		return "60"
	}
	return "15"
}

func rateEnv(r int) string {
	if r == 0 {
		return ""
	}
	return strconv.Itoa(r)
}

func parse(path string, t target, d time.Duration) (result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return result{}, fmt.Errorf("k6 summary: %w", err)
	}
	var raw struct {
		Metrics map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return result{}, fmt.Errorf("k6 summary %s: %w", path, err)
	}
	// Values are numbers, except the thresholds each metric carries.
	var s struct{ Metrics map[string]map[string]float64 }
	s.Metrics = map[string]map[string]float64{}
	for name, m := range raw.Metrics {
		s.Metrics[name] = map[string]float64{}
		for k, v := range m {
			if f, ok := v.(float64); ok {
				s.Metrics[name][k] = f
			}
		}
	}
	dur := s.Metrics["http_req_duration{scenario:"+t.scenario+"}"]
	reqs := s.Metrics["http_reqs{scenario:"+t.scenario+"}"]
	failed := s.Metrics["http_req_failed"]
	checks := s.Metrics["checks"]
	r := result{target: t, rps: reqs["count"] / d.Seconds(), p50: dur["med"], p95: dur["p(95)"], p99: dur["p(99)"]}
	r.errors = failed["value"]
	if c := checks["passes"] + checks["fails"]; c > 0 && checks["fails"]/c > r.errors {
		r.errors = checks["fails"] / c
	}
	return r, nil
}

func keyOf(t target) string { return t.name + "/" + connsOf(t) }

func connsOf(t target) string {
	if t.rate > 0 {
		return fmt.Sprintf("%d @ %d/s", t.vus, t.rate)
	}
	return strconv.Itoa(t.vus)
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func print(w io.Writer, targets []target, all map[string][]result, rounds int, d time.Duration) {
	med := func(key string, f func(result) float64) float64 {
		var xs []float64
		for _, r := range all[key] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	fmt.Fprintf(w, "\netalage load test: %d round(s) of %s per target, server pinned to CPU 0, k6 on CPU 1 (%d CPUs), %s\n\n",
		rounds, d, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "| target | conns | rps | ratio to hello | p50 ms | p95 ms | p99 ms | errors | thresholds |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	base := map[string]float64{}
	for _, t := range targets {
		if t.scenario == "hello" {
			base[connsOf(t)] = med(keyOf(t), func(r result) float64 { return r.rps })
		}
	}
	for _, t := range targets {
		key := keyOf(t)
		rps := med(key, func(r result) float64 { return r.rps })
		ok := "pass"
		for _, r := range all[key] {
			if !r.thresholdsOK {
				ok = "FAIL"
			}
		}
		name := t.name
		if t.eventsPerReq > 0 {
			name += fmt.Sprintf(" (%.0f events/s)", rps*float64(t.eventsPerReq))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.3f | %.3f | %.3f | %.2f%% | %s |\n", name, connsOf(t), rps, rps/base[connsOf(t)],
			med(key, func(r result) float64 { return r.p50 }), med(key, func(r result) float64 { return r.p95 }),
			med(key, func(r result) float64 { return r.p99 }), 100*med(key, func(r result) float64 { return r.errors }), ok)
	}

}
