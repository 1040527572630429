package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterPort returns a free port whose cluster bus port (port+10000) is
// free too; a port above 55000 has no bus port to speak of.
func clusterPort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port > 55000 {
			continue
		}
		if bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			bus.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port with a free cluster bus port")
}

// startRedisCluster starts three redis-server masters pinned to cpu, joins
// them into one Redis Cluster with redis-cli and returns their addresses
// once every master reports the cluster ok and a write through a cluster
// client lands. The processes join ps, so they stop with the run.
func startRedisCluster(ps *procs, redisBin, work string, cpu int) ([]string, error) {
	cli, err := findOrInstall("redis-cli", "redis-tools")
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := range 3 {
		port, err := clusterPort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(work, "cluster-redis-"+strconv.Itoa(i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		cmd := pin(cpu, redisBin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		if err := ps.start(cmd, filepath.Join(dir, "redis.log")); err != nil {
			return nil, err
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, a := range addrs {
		if err := waitRedis(a); err != nil {
			return nil, err
		}
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command(cli, append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if ctx.Err() != nil {
				c.Close()
				return nil, fmt.Errorf("redis cluster node %s not ok: %v", a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	// Every master must know every slot's owner before clients route.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	for cc.Set(ctx, "loadtest:ready", "1", time.Minute).Err() != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("redis cluster %v takes no writes", addrs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addrs, nil
}

func waitRedis(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	// The port first: go-redis logs every refused dial.
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisStats is what one Redis server has done so far: commands processed
// and CPU seconds (user + system), from INFO.
type redisStats struct {
	commands float64
	cpu      float64
	memory   float64 // used_memory, bytes
}

func readRedisStats(ctx context.Context, addr string) (redisStats, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "stats", "cpu", "memory").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("INFO on %s: %w", addr, err)
	}
	f := infoFields(info)
	return redisStats{commands: f["total_commands_processed"], cpu: f["used_cpu_user"] + f["used_cpu_sys"], memory: f["used_memory"]}, nil
}

// infoFields reads the numeric fields of an INFO answer.
func infoFields(info string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out
}
