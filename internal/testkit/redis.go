package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisArgs are the settings every test Redis runs with: no persistence
// (the tests own the data), and hashes kept as listpacks up to the sizes
// the Redis store needs (recipients/redisstore, docs/redis.md).
var RedisArgs = []string{
	"--bind", "127.0.0.1", "--protected-mode", "no",
	"--save", "", "--appendonly", "no",
	"--hash-max-listpack-entries", "1024", "--hash-max-listpack-value", "16",
}

// Redis starts a private redis-server on a free loopback port with its own
// temporary directory, stopped when the test ends, and returns its
// host:port. Without redis-server the test skips loudly (fails with
// CI=true): see Need.
func Redis(t testing.TB) string {
	t.Helper()
	bin := Need(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	addr, stop, err := StartRedis(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// StartRedis is Redis for programs (bench/redis): it starts bin in dir
// with extra arguments and returns its address and a stop function.
func StartRedis(bin, dir string, extra ...string) (addr string, stop func(), err error) {
	addr, err = FreeAddr()
	if err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--port", port, "--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, RedisArgs...)
	cmd := exec.Command(bin, append(args, extra...)...)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	if err := WaitAddr(addr); err != nil {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		return "", nil, fmt.Errorf("redis-server: %v\n%s", err, log)
	}
	return addr, stop, nil
}

// RedisCluster starts a Redis Cluster of n masters (no replicas) on free
// loopback ports, each with its own directory, joins them with redis-cli
// --cluster create and waits for cluster_state:ok on every node. It
// returns the nodes' addresses; the cluster stops when the test ends.
func RedisCluster(t testing.TB, n int) []string {
	t.Helper()
	bin := Need(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	cli := Need(t, "redis-tools", "redis-cli", "/usr/bin/redis-cli")
	addrs, stop, err := StartRedisCluster(bin, cli, t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addrs
}

// StartRedisCluster is RedisCluster for programs.
func StartRedisCluster(bin, cli, dir string, n int) (addrs []string, stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			stop()
			return nil, nil, err
		}
		a, s, err := StartRedis(bin, d, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-node-timeout", "5000")
		if err != nil {
			stop()
			return nil, nil, err
		}
		addrs = append(addrs, a)
		stops = append(stops, s)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			state, err := clusterState(a)
			if err == nil && state == "ok" {
				break
			}
			if time.Now().After(deadline) {
				stop()
				return nil, nil, fmt.Errorf("redis cluster node %s: cluster_state %q (%v) after 30 s", a, state, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs, stop, nil
}

// clusterState asks a node for CLUSTER INFO's cluster_state, in RESP
// by hand (testkit does not depend on a Redis client).
func clusterState(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if v, ok := strings.CutPrefix(line, "cluster_state:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
}
