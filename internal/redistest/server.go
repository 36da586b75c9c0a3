package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Binaries run by the harness; PG_REDIS_SERVER and PG_REDIS_CLI override
// them.
var (
	serverBin = envOr("PG_REDIS_SERVER", "redis-server")
	cliBin    = envOr("PG_REDIS_CLI", "redis-cli")
)

// Deadlines sized for a loaded 2-core machine: they bound a hang.
const (
	readyTimeout = 15 * time.Second // process start until PING answers
	exitTimeout  = 10 * time.Second // SIGKILL until the process is reaped
	cmdTimeout   = 10 * time.Second // one Do
	startTries   = 5                // ports tried when the picked one was taken meanwhile
)

// Server is one redis-server (or Sentinel) process a test started.
type Server struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string // working directory: config, log, cluster nodes.conf

	cfg      config
	args     []string // redis-server arguments, the port included
	sentinel string   // master name when this is a Sentinel
	urlPass  string   // password URL gives: the server's, or a Sentinel's master's

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
	client *goredis.Client
}

// Option changes how Start, StartCluster and StartSentinel run servers.
type Option func(*config)

type config struct {
	password string
	args     []string
}

// WithPassword makes the server require pw (requirepass; masterauth in a
// cluster). URL, Do and Client use it.
func WithPassword(pw string) Option { return func(c *config) { c.password = pw } }

// WithArgs appends redis-server arguments, e.g. "--maxmemory", "10mb".
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Start runs a redis-server on a free port with no persistence and waits
// until it answers PING. tb.Cleanup kills it.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return start(tb, newConfig(opts), tb.TempDir(), nil, nil)
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// start runs a server in dir with pre (a config file) before and extra
// after the base arguments, retrying with another port when the one picked
// was taken before redis-server bound it.
func start(tb testing.TB, cfg config, dir string, pre, extra []string) *Server {
	tb.Helper()
	cluster := false
	for _, a := range extra {
		cluster = cluster || a == "--cluster-enabled"
	}
	var lastErr error
	for range startTries {
		port, err := pickPort(cluster)
		if err != nil {
			tb.Fatal(err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Dir: dir, cfg: cfg, urlPass: cfg.password}
		s.args = append(append(slices.Clip(pre),
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"),
			"--daemonize", "no",
			"--protected-mode", "no",
		), extra...)
		if cfg.password != "" {
			s.args = append(s.args, "--requirepass", cfg.password, "--masterauth", cfg.password)
		}
		s.args = append(s.args, cfg.args...)
		err = s.run()
		if err == nil {
			tb.Cleanup(func() { s.stop() })
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	tb.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// run starts the process and waits until it answers PING; on failure the
// error carries the server's log.
func (s *Server) run() error {
	logPath := filepath.Join(s.Dir, "redis.log")
	_ = os.Remove(logPath)
	cmd := exec.Command(serverBin, s.args...)
	cmd.Dir = s.Dir
	// A crashed test binary must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", serverBin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	if err := s.waitReady(exited); err != nil {
		s.stop()
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nredis-server %s\n--- log ---\n%s", err, strings.Join(s.args, " "), log)
	}
	return nil
}

// waitReady polls PING until the server answers or exits.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			if strings.Contains(string(log), "Address already in use") {
				return fmt.Errorf("port %d in use", s.Port)
			}
			return errors.New("redis-server exited")
		default:
		}
		if lastErr = s.ping(); lastErr == nil {
			return nil
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer to PING within %v: %v", readyTimeout, lastErr)
}

func (s *Server) ping() error {
	c := goredis.NewClient(s.clientOptions())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func (s *Server) clientOptions() *goredis.Options {
	return &goredis.Options{
		Addr:          s.Addr,
		Password:      s.cfg.password,
		Protocol:      2, // plain arrays for Do's formatting
		DialTimeout:   time.Second,
		DialerRetries: 1, // a killed server must fail Try at once
		ReadTimeout:   5 * time.Second,
		WriteTimeout:  5 * time.Second,
		MaxRetries:    -1,
		PoolSize:      4,
	}
}

// stop kills the process and waits until it is reaped.
func (s *Server) stop() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("redis-server pid %d still running %v after SIGKILL", cmd.Process.Pid, exitTimeout)
	}
}

// URL is the server's address for broker/redis: redis://[:password@]
// 127.0.0.1:port/0, or redis-sentinel://127.0.0.1:port/<master> for a
// Sentinel.
func (s *Server) URL() string {
	if s.sentinel != "" {
		return "redis-sentinel://" + s.userinfo() + s.Addr + "/" + s.sentinel
	}
	return "redis://" + s.userinfo() + s.Addr + "/0"
}

func (s *Server) userinfo() string {
	if s.urlPass == "" {
		return ""
	}
	return ":" + url.PathEscape(s.urlPass) + "@"
}

// Kill ends the server with SIGKILL and waits for it to exit: an outage.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("redistest: killing %s: %v", s.Addr, err)
	}
}

// Restart starts the server again on the same port with its data gone and
// waits until it answers PING. A cluster node keeps its nodes.conf, so it
// rejoins the cluster with its slots (and no keys). A running server is
// killed first.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Kill(tb)
	for _, f := range []string{"dump.rdb", "appendonly.aof", "appendonlydir"} {
		_ = os.RemoveAll(filepath.Join(s.Dir, f))
	}
	// The port may be held a moment by a process that picked it meanwhile:
	// retry for a few seconds before giving up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.run()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "in use") || time.Now().After(deadline) {
			tb.Fatalf("redistest: restarting redis-server on %s: %v", s.Addr, err)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the port to be released: nothing to wait on
	}
}

// Alive reports whether the process is running (not killed, not crashed).
func (s *Server) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Client returns a go-redis client to this server (closed on Kill and at
// cleanup). Call it again after Restart.
func (s *Server) Client() *goredis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = goredis.NewClient(s.clientOptions())
	}
	return s.client
}

// Do runs one command like redis-cli and returns its reply as text: a
// string or number as is, nil as "", an array as its elements one a line.
// An error reply fails the test.
func (s *Server) Do(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.Try(args...)
	if err != nil {
		tb.Fatalf("redistest: %s %s: %v", s.Addr, strings.Join(args, " "), err)
	}
	return out
}

// Try is Do returning the error (an error reply or a connection failure)
// instead of failing the test.
func (s *Server) Try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	a := make([]any, len(args))
	for i, v := range args {
		a[i] = v
	}
	v, err := s.Client().Do(ctx, a...).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return format(v), nil
}

func format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		lines := make([]string, len(v))
		for i, e := range v {
			lines[i] = format(e)
		}
		return strings.Join(lines, "\n")
	default:
		return fmt.Sprint(v)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
