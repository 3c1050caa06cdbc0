package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/rueidis"
)

// call is one script run: its keys and arguments.
type call struct {
	keys []string
	args []string
}

// driver runs scripts, several in one pipelined round trip (a cluster
// client sends each to its node, the nodes in parallel). Every script is
// run at most once: they are not idempotent (a repeated first spam would
// be a Spam), so neither client retries them; a NOSCRIPT reply means the
// script did not run, and it is sent again as EVAL.
type driver interface {
	run(ctx context.Context, s *script, calls []call, res [][]int64) error
	close()
}

// endpoint is where and how to connect, client-neutral.
type endpoint struct {
	addrs    []string // one address, or the cluster's seed nodes
	cluster  bool
	user     string
	password string
	db       int
	tls      *tls.Config
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	poolSize int
}

func (e *endpoint) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if e.dial == nil {
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := e.dial(ctx, network, addr)
		if err != nil || e.tls == nil {
			return c, err
		}
		cfg := e.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		return tls.Client(c, cfg), nil
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// --- rueidis ---

type rueidisDriver struct {
	c rueidis.Client
}

func newRueidis(e *endpoint) (driver, error) {
	o := rueidis.ClientOption{
		InitAddress:       e.addrs,
		Username:          e.user,
		Password:          e.password,
		SelectDB:          e.db,
		TLSConfig:         e.tls,
		DisableCache:      true, // no client-side caching (CLIENT TRACKING)
		DisableRetry:      true,
		ForceSingleClient: !e.cluster,
	}
	if d := e.dialer(); d != nil {
		o.DialCtxFn = func(ctx context.Context, addr string, _ *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d(ctx, "tcp", addr)
		}
	}
	c, err := rueidis.NewClient(o)
	if err != nil {
		return nil, err
	}
	return &rueidisDriver{c: c}, nil
}

func (d *rueidisDriver) cmd(s *script, c *call, sha bool) rueidis.Completed {
	if sha {
		return d.c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(c.keys))).Key(c.keys...).Arg(c.args...).Build()
	}
	return d.c.B().Eval().Script(s.src).Numkeys(int64(len(c.keys))).Key(c.keys...).Arg(c.args...).Build()
}

func (d *rueidisDriver) run(ctx context.Context, s *script, calls []call, res [][]int64) error {
	if len(calls) == 1 {
		r := d.c.Do(ctx, d.cmd(s, &calls[0], true))
		if isNoScript(r.Error()) {
			r = d.c.Do(ctx, d.cmd(s, &calls[0], false))
		}
		v, err := r.AsIntSlice()
		res[0] = v
		return err
	}
	cmds := make(rueidis.Commands, len(calls))
	for i := range calls {
		cmds[i] = d.cmd(s, &calls[i], true)
	}
	rs := d.c.DoMulti(ctx, cmds...)
	var retry []int
	var errs []error
	for i, r := range rs {
		if isNoScript(r.Error()) {
			retry = append(retry, i)
			continue
		}
		v, err := r.AsIntSlice()
		res[i] = v
		errs = append(errs, err)
	}
	if len(retry) > 0 {
		cmds = cmds[:0]
		for _, i := range retry {
			cmds = append(cmds, d.cmd(s, &calls[i], false))
		}
		for j, r := range d.c.DoMulti(ctx, cmds...) {
			v, err := r.AsIntSlice()
			res[retry[j]] = v
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *rueidisDriver) close() { d.c.Close() }

// --- go-redis ---

type goredisDriver struct {
	c redis.UniversalClient
}

func newGoRedis(e *endpoint) (driver, error) {
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if e.cluster {
		return &goredisDriver{c: redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: e.addrs, Username: e.user, Password: e.password, TLSConfig: e.tls,
			Dialer: e.dialer(), MaxRetries: -1, MaxRedirects: 3, ContextTimeoutEnabled: true,
			DisableIdentity: true, PoolSize: e.poolSize, MaintNotificationsConfig: maint,
		})}, nil
	}
	return &goredisDriver{c: redis.NewClient(&redis.Options{
		Addr: e.addrs[0], Username: e.user, Password: e.password, DB: e.db, TLSConfig: e.tls,
		Dialer: e.dialer(), MaxRetries: -1, ContextTimeoutEnabled: true,
		DisableIdentity: true, PoolSize: e.poolSize, MaintNotificationsConfig: maint,
	})}, nil
}

func anyArgs(a []string) []any {
	v := make([]any, len(a))
	for i, s := range a {
		v[i] = s
	}
	return v
}

func (d *goredisDriver) run(ctx context.Context, s *script, calls []call, res [][]int64) error {
	if len(calls) == 1 {
		c := &calls[0]
		args := anyArgs(c.args)
		r := d.c.EvalSha(ctx, s.sha, c.keys, args...)
		if isNoScript(r.Err()) {
			r = d.c.Eval(ctx, s.src, c.keys, args...)
		}
		v, err := r.Int64Slice()
		res[0] = v
		return err
	}
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = d.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range calls {
			cmds[i] = p.EvalSha(ctx, s.sha, calls[i].keys, anyArgs(calls[i].args)...)
		}
		return nil
	})
	var errs []error
	var retry []int
	for i, r := range cmds {
		if isNoScript(r.Err()) {
			retry = append(retry, i)
			continue
		}
		v, err := r.Int64Slice()
		res[i] = v
		errs = append(errs, err)
	}
	if len(retry) > 0 {
		again := make([]*redis.Cmd, len(retry))
		_, _ = d.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range retry {
				again[j] = p.Eval(ctx, s.src, calls[i].keys, anyArgs(calls[i].args)...)
			}
			return nil
		})
		for j, r := range again {
			v, err := r.Int64Slice()
			res[retry[j]] = v
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *goredisDriver) close() { d.c.Close() }

func newDriver(client string, e *endpoint) (driver, error) {
	switch client {
	case "", "rueidis":
		return newRueidis(e)
	case "go-redis":
		return newGoRedis(e)
	}
	return nil, fmt.Errorf("redisstore: unknown client %q (rueidis or go-redis)", client)
}
