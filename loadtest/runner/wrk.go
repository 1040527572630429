package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// findWrk returns wrk, installing Debian's package when it is missing.
func findWrk() (string, error) { return findOrInstall("wrk", "wrk") }

// findOrInstall returns the path of bin, installing Debian's package pkg
// when it is missing and this is root; otherwise the error names what to
// install.
func findOrInstall(bin, pkg string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s not found: install Debian's %s package (apt-get install %s)", bin, pkg, pkg)
	}
	fmt.Fprintf(os.Stderr, "installing Debian's %s\n", pkg)
	cmd := exec.Command("apt-get", "install", "-y", "-q", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("apt-get install %s: %w", pkg, err)
	}
	return exec.LookPath(bin)
}

// wrkResult is what loadtest/wrk/etalage.lua prints in done().
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUs int64 `json:"duration_us"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Timeout    int64 `json:"timeout"`
	Status     int64 `json:"status"`
	P50        int64 `json:"p50_us"`
	P95        int64 `json:"p95_us"`
	P99        int64 `json:"p99_us"`
	Max        int64 `json:"max_us"`
}

// wrkTarget is one row measured with wrk.
type wrkTarget struct {
	key, name string
	url       string // base URL
	mode      string // get, decide, events (see etalage.lua)
	visitors  string // file
	node      *server
	perReq    int // events per request
}

type wrkRun struct {
	wrk, work         string
	o                 options
	hello, helloRedis string
	servers           map[string]server
}

func (w *wrkRun) run() ([]row, error) {
	emb, red, cold := w.servers["embedded"], w.servers["redis"], w.servers["redis-nocache"]
	targets := []wrkTarget{
		{key: "hello", name: "fasthttp hello (baseline)", url: w.hello, mode: "get"},
		{key: "hello_redis", name: "fasthttp + go-redis, 2 pipelined HGETALLs (anchor)", url: w.helloRedis, mode: "get"},
		// hello answering the very requests warm decide gets (a POST with a
		// JSON body): what the request alone costs, before any work.
		{key: "hello_post", name: "fasthttp hello, sent the decide POSTs", url: w.hello, mode: "decide"},
		{key: "decide_warm", name: "decide, warm (cache), embedded", url: emb.public, mode: "decide", node: &emb},
		{key: "decide_cold", name: "decide, cold (Redis every request)", url: cold.public, mode: "decide", node: &cold},
		{key: "events", name: "events into Redis, batches of 5", url: red.public, mode: "events", node: &red, perReq: 5},
	}
	var keep []wrkTarget
	for _, t := range targets {
		if w.o.wants(t.key) {
			keep = append(keep, t)
		}
	}
	targets = keep
	visitors := map[string][]string{}
	for i := range targets {
		t := &targets[i]
		var n int
		switch t.key {
		case "decide_warm":
			n = w.o.warm
		case "hello_post":
			continue // uses decide_warm's visitors, set below
		case "decide_cold", "events":
			n = w.o.cold
		default:
			continue
		}
		t.visitors = filepath.Join(w.work, "visitors-"+t.key+".txt")
		fmt.Fprintf(os.Stderr, "creating %d visitors on %s\n", n, t.node.name)
		vs, err := newVisitors(t.url, n, t.visitors)
		if err != nil {
			return nil, err
		}
		if t.mode == "decide" {
			if err := checkPersonalised(t.url, vs); err != nil {
				return nil, err
			}
		}
		visitors[t.key] = vs
	}
	keep = targets[:0]
	for _, t := range targets {
		if t.key == "hello_post" {
			for _, u := range targets {
				if u.key == "decide_warm" {
					t.visitors = u.visitors
				}
			}
			if t.visitors == "" {
				continue // decide_warm not run
			}
		}
		keep = append(keep, t)
	}
	targets = keep
	all := map[string][]row{}
	var acknowledged int64
	for round := 1; round <= w.o.rounds; round++ {
		for _, conns := range []int{64, 8} {
			for _, t := range targets {
				fmt.Fprintf(os.Stderr, "wrk round %d: %s, %d connections\n", round, t.name, conns)
				r, err := w.one(t, conns)
				if err != nil {
					return nil, err
				}
				if t.perReq > 0 {
					acknowledged += r.ok
				}
				all[keyOf(r)] = append(all[keyOf(r)], r)
			}
		}
	}
	var rows []row
	for _, conns := range []int{64, 8} {
		hello := all[keyOf(row{key: "hello", generator: "wrk", conns: strconv.Itoa(conns)})]
		for _, t := range targets {
			rs := all[keyOf(row{key: t.key, generator: "wrk", conns: strconv.Itoa(conns)})]
			r := medianRow(rs)
			if t.key != "hello" {
				r.note = joinNotes(roundRatios(rs, hello), r.note)
			}
			rows = append(rows, r)
		}
	}
	if vs, ok := visitors["events"]; ok {
		stored, err := storedViews(w.servers["redis"].admin, vs, "/demo/c/running")
		if err != nil {
			return nil, err
		}
		for i := range rows {
			if rows[i].key == "events" {
				rows[i].note = fmt.Sprintf("%d batches acknowledged over all runs, %d found stored", acknowledged, stored)
				rows[i].failed = rows[i].failed || int64(stored) < acknowledged
			}
		}
	}
	return rows, nil
}

// one runs wrk once against t and checks, on etalage, that no decide was
// degraded and no store error happened during the run.
func (w *wrkRun) one(t wrkTarget, conns int) (row, error) {
	var before [2]float64
	if t.node != nil {
		before = w.health(t.node)
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(w.o.duration.Seconds())) + "s",
		"-s", filepath.Join("loadtest", "wrk", "etalage.lua"), t.url + "/", "--", t.mode}
	if t.visitors != "" {
		args = append(args, t.visitors)
	}
	prof := w.profile(t, conns)
	out, err := pin(1, w.wrk, args...).CombinedOutput()
	if perr := <-prof; perr != nil {
		fmt.Fprintln(os.Stderr, "pprof:", perr)
	}
	if err != nil {
		return row{}, fmt.Errorf("wrk %v: %w\n%s", args, err, out)
	}
	i := bytes.Index(out, []byte("WRK_RESULT "))
	if i < 0 {
		return row{}, fmt.Errorf("wrk printed no result:\n%s", out)
	}
	var res wrkResult
	if err := json.Unmarshal(bytes.TrimSpace(out[i+len("WRK_RESULT "):]), &res); err != nil {
		return row{}, fmt.Errorf("wrk result: %w\n%s", err, out)
	}
	secs := float64(res.DurationUs) / 1e6
	bad := res.Connect + res.Read + res.Write + res.Timeout + res.Status
	r := row{key: t.key, name: t.name, generator: "wrk", conns: strconv.Itoa(conns), perReq: t.perReq,
		rps: float64(res.Requests) / secs, p50: ms(res.P50), p95: ms(res.P95), p99: ms(res.P99), ok: res.Requests - bad}
	if res.Requests > 0 {
		r.errors = float64(bad) / float64(res.Requests)
	}
	if t.node != nil {
		after := w.health(t.node)
		if d := after[0] - before[0]; d > 0 {
			r.note = fmt.Sprintf("%.0f degraded decides", d)
			r.errors += d / float64(res.Requests)
		}
		if d := after[1] - before[1]; d > 0 {
			r.note += fmt.Sprintf(" %.0f store errors", d)
			r.errors += d / float64(res.Requests)
		}
	}
	r.failed = r.errors > 0
	return r, nil
}

// profile takes a CPU profile of t's node while wrk runs, when -pprof
// names t (64 connections only), into the work directory; the channel
// yields when it is written.
func (w *wrkRun) profile(t wrkTarget, conns int) <-chan error {
	done := make(chan error, 1)
	if t.node == nil || conns != 64 || !(options{only: w.o.pprof}).wants(t.key) || w.o.pprof == "" {
		done <- nil
		return done
	}
	secs := max(1, int(w.o.duration.Seconds())-2)
	go func() {
		time.Sleep(time.Second) // past wrk's connection ramp-up
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.node.admin, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		name := filepath.Join(w.work, fmt.Sprintf("cpu-%s-%d.prof", t.key, time.Now().Unix()))
		f, err := os.Create(name)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
			fmt.Fprintln(os.Stderr, "cpu profile:", name)
		}
		done <- err
	}()
	return done
}

// health reads the degraded-decide and store-error counters of a node.
func (w *wrkRun) health(s *server) [2]float64 {
	d, _ := counter(s.admin, "etalage_decide_degraded_total")
	e, _ := counter(s.admin, "etalage_store_errors_total")
	return [2]float64{d, e}
}

func ms(us int64) float64 { return float64(us) / 1000 }
