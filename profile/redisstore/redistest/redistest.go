// Package redistest starts real redis-server processes for tests: a single
// node, a node that can be killed and restarted, and a 3-master Redis
// Cluster, each on free ports and stopped when the test ends. It never
// skips: without redis-server the test fails naming what to install.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/redisstore"
	"github.com/redis/go-redis/v9"
)

// Process is a redis-server started for a test.
type Process struct {
	Addr string
	tb   testing.TB
	args []string
	dir  string
	cmd  *exec.Cmd
}

func binary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found: install Debian's redis-server package (make test does this: .ci/deps)", name)
	}
	return p
}

// freePort returns a port that is free, and whose cluster bus port
// (port+10000) is free too.
func freePort(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port > 55000 {
			continue
		}
		if bl, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			bl.Close()
			return port
		}
	}
	tb.Fatalf("no free port pair found")
	return 0
}

func start(tb testing.TB, extra ...string) *Process {
	tb.Helper()
	bin := binary(tb, "redis-server")
	dir := tb.TempDir()
	port := freePort(tb)
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no"}, extra...)
	p := &Process{Addr: "127.0.0.1:" + strconv.Itoa(port), tb: tb, args: append([]string{bin}, args...), dir: dir}
	p.run()
	tb.Cleanup(p.stop)
	return p
}

func (p *Process) run() {
	p.tb.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.tb.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
			p.tb.Fatalf("redis-server on %s did not answer: %v\n%s", p.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Process) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// Kill stops the server at once, as a crash would.
func (p *Process) Kill() { p.stop() }

// Restart starts the server again on the same port (empty: nothing was
// persisted) and waits until it answers.
func (p *Process) Restart() {
	p.tb.Helper()
	p.stop()
	p.run()
}

// Server starts a redis-server for the test and returns its address.
func Server(tb testing.TB) string {
	tb.Helper()
	return start(tb).Addr
}

// StartServer starts a redis-server that the test may kill and restart;
// extra arguments are passed on (e.g. --appendonly yes --appendfsync always
// for data that must survive Kill and Restart).
func StartServer(tb testing.TB, extra ...string) *Process {
	tb.Helper()
	return start(tb, extra...)
}

// Cluster starts a Redis Cluster of three masters and returns their
// addresses once the cluster state is ok.
func Cluster(tb testing.TB) []string {
	tb.Helper()
	var addrs []string
	for _, p := range StartCluster(tb) {
		addrs = append(addrs, p.Addr)
	}
	return addrs
}

// StartCluster is Cluster returning the processes, so that a test can stop
// a node. Slots of a stopped node fail while the others keep serving
// (cluster-require-full-coverage no).
func StartCluster(tb testing.TB) []*Process {
	tb.Helper()
	cli := binary(tb, "redis-cli")
	var addrs []string
	var procs []*Process
	for range 3 {
		p := start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no")
		addrs = append(addrs, p.Addr)
		procs = append(procs, p)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				tb.Fatalf("cluster node %s not ok: %v %s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	// Every node must also know every slot's owner before clients route.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	for {
		err := cc.Set(context.Background(), fmt.Sprintf("redistest:%d", time.Now().UnixNano()), "1", time.Second).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster does not take writes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return procs
}

// Options are store options for tests whose subject is not deadlines. On a
// busy test machine (race builds of several packages at once) a Redis call
// can wait on the scheduler past the production read/write timeouts of
// 250 ms, or a new connection past the dial timeout of 500 ms, and fail
// the test for a reason that is not its own.
func Options() redisstore.Options {
	return redisstore.Options{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
}
