// Command runner is `make loadtest`. It builds etalage and the hello
// baselines, starts them pinned to CPU 0 (with a throwaway Redis on CPU 1),
// creates visitors through the public API, and then measures from CPU 1:
//
//   - with wrk, the generator behind the anchors in docs/PERFORMANCE.md:
//     throughput and latency of hello, hello+Redis, warm decide, cold decide
//     and event ingestion, at 64 and 8 connections, in interleaved rounds;
//   - with k6, the scenarios under loadtest/k6 at a fixed arrival rate, each
//     failing on its own latency and error thresholds.
//   - with k6 too, three etalage nodes on a Redis Cluster of three masters
//     under mixed.js spread round robin, with a definitions change half-way
//     (cluster.go).
//
// `run.sh memory` instead measures what a visitor costs in Redis and in a
// node's cache, for docs/CAPACITY.md (memory.go).
//
// It prints one table with every figure's median over the rounds and each
// throughput as a ratio to hello measured in the same run, then the goals
// met or not, and stops everything it started. It exits non-zero when a run
// had errors, a k6 threshold failed, or an acknowledged event was not found.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration  time.Duration
	rounds    int
	only      string
	keep      bool
	generator string
	warm      int
	cold      int
	k6Rate    int
	exp       bool
	pprof     string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved wrk rounds; the table shows each figure's median")
	flag.StringVar(&o.only, "only", "", "comma-separated targets: hello_redis,hello_post,decide_warm,decide_cold,events,mixed,cluster (hello always runs; hello_post needs decide_warm)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, k6 summaries, visitor lists)")
	flag.StringVar(&o.generator, "generator", "wrk,k6", "load generators to run: wrk, k6 or both")
	flag.IntVar(&o.warm, "warm-visitors", 1000, "visitors for warm decide (all cached)")
	flag.IntVar(&o.cold, "cold-visitors", 10000, "visitors for cold decide and events")
	flag.IntVar(&o.k6Rate, "k6-rate", 2000, "arrival rate of the k6 scenarios, requests per second")
	flag.BoolVar(&o.exp, "experiment", false, "run the servers on the demo definitions with one 50/50 experiment on the hero, open to every visitor (experiment.go)")
	flag.StringVar(&o.pprof, "pprof", "", "comma-separated etalage targets (decide_warm,decide_cold,events) to CPU-profile during their 64-connection wrk runs, into the work directory (use with -keep)")
	if len(os.Args) > 1 && os.Args[1] == "memory" {
		// ./loadtest/run.sh memory: what a visitor costs in Redis and in
		// a node's cache (docs/CAPACITY.md).
		if err := memoryMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest memory:", err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	failed, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "loadtest: FAILED (see the table)")
		os.Exit(1)
	}
}

func (o options) wants(name string) bool {
	if o.only == "" || name == "hello" {
		return true
	}
	for _, n := range strings.Split(o.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func (o options) uses(gen string) bool { return strings.Contains(o.generator, gen) }

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

// build builds each {binary, package} into work.
func build(work string, bins ...[2]string) error {
	for _, b := range bins {
		cmd := exec.Command("go", "build", "-o", filepath.Join(work, b[0]), b[1])
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b[1], err)
		}
	}
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
	deadline := time.Now().Add(30 * time.Second)
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

// server is one etalage under test.
type server struct {
	name, public, admin string
}

func run(o options) (failed bool, err error) {
	var k6, wrk string
	if o.uses("k6") {
		if k6, err = findK6(); err != nil {
			return false, err
		}
	}
	if o.uses("wrk") {
		if wrk, err = findWrk(); err != nil {
			return false, err
		}
	}
	redisBin, err := findOrInstall("redis-server", "redis-server")
	if err != nil {
		return false, err
	}
	work, err := os.MkdirTemp("", "etalage-loadtest-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if err := build(work, [2]string{"etalage", "./cmd/etalage"}, [2]string{"hello", "./loadtest/hello"}); err != nil {
		return false, err
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
		return false, err
	}
	hello, helloRedis := freeAddr(), freeAddr()
	if err := ps.start(pin(0, filepath.Join(work, "hello"), "-listen", hello), filepath.Join(work, "hello.log")); err != nil {
		return false, err
	}
	if err := ps.start(pin(0, filepath.Join(work, "hello"), "-listen", helloRedis, "-redis", redisAddr), filepath.Join(work, "hello-redis.log")); err != nil {
		return false, err
	}
	servers := map[string]server{}
	for _, s := range []struct{ name, store, cache string }{
		{"embedded", "embedded:" + filepath.Join(work, "data"), "256MiB"},
		{"redis", "redis://" + redisAddr + "/0", "256MiB"},
		{"redis-nocache", "redis://" + redisAddr + "/1", "0"},
	} {
		pub, adm := freeAddr(), freeAddr()
		args := []string{"serve", "--listen", pub, "--admin-listen", adm, "--store", s.store, "--cache-size", s.cache,
			"--secret", "loadtest-secret-0123456789abcdef", "--dev", "--cookie-secure=false", "--rate-limit", "0",
			"--log-format", "json", "--demo", "false", "--now", "2026-11-24T12:00:00Z"}
		if o.exp {
			if args, err = withExperiment(work, args); err != nil {
				return false, err
			}
		}
		if err := ps.start(pin(0, filepath.Join(work, "etalage"), args...), filepath.Join(work, s.name+".log")); err != nil {
			return false, err
		}
		if err := waitHTTP("http://" + adm + "/readyz"); err != nil {
			return false, fmt.Errorf("etalage on %s: %w (log in %s)", s.store, err, filepath.Join(work, s.name+".log"))
		}
		servers[s.name] = server{name: s.name, public: "http://" + pub, admin: "http://" + adm}
	}
	for _, a := range []string{hello, helloRedis} {
		if err := waitHTTP("http://" + a + "/"); err != nil {
			return false, err
		}
	}

	var rows []row
	if o.uses("wrk") {
		w := wrkRun{wrk: wrk, work: work, o: o, hello: "http://" + hello, helloRedis: "http://" + helloRedis, servers: servers}
		r, err := w.run()
		if err != nil {
			return false, err
		}
		rows = append(rows, r...)
	}
	if o.uses("k6") {
		r, err := runK6(k6, work, o, "http://"+hello, servers)
		if err != nil {
			return false, err
		}
		rows = append(rows, r...)
	}
	var cluster *clusterResult
	if o.uses("k6") && o.wants("cluster") {
		r, res, err := runCluster(&ps, k6, filepath.Join(work, "etalage"), redisBin, work, o)
		if err != nil {
			return false, err
		}
		rows, cluster = append(rows, r...), res
	}
	failed = report(os.Stdout, rows, o)
	if cluster != nil {
		cluster.print(os.Stdout)
	}
	return failed, nil
}
