// Package serverproc runs a server under test as a child process with its
// output in a log file: the benchmark commands start, wait for, read the
// log of and stop their servers the same way, and a failure then reads the
// same whichever command hit it.
package serverproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotReady is returned when a server does not come up in time.
var ErrNotReady = errors.New("server not ready")

// Proc is one started server process.
type Proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // where its stderr goes
	exited chan struct{}
}

// Start runs cmd with its stderr to a new file at logPath. drain, if not
// nil, reads cmd's stdout (set up with cmd.StdoutPipe) and must return at
// EOF; the process is waited for only after it returns, since Wait closes
// the pipe. Otherwise a stdout the caller left unset goes to the log too.
// name is the process's name in errors.
func Start(name string, cmd *exec.Cmd, logPath string, drain func()) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s log: %w", name, err)
	}
	cmd.Stderr = logf
	if cmd.Stdout == nil && drain == nil {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		if drain != nil {
			drain()
		}
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid answers the process id, for reading /proc.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and its log is closed.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop asks the process to exit (SIGINT, so that a server can close its
// connections the way it would in production), kills it after 15s and
// waits for it.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// LogTail answers the end of the process's log, for error messages.
func (p *Proc) LogTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// WaitReady calls ready every 100ms until it returns nil, the process
// exits or limit is up. Watching the process too means a server that
// failed to start is reported at once, with its log, rather than after
// limit.
func (p *Proc) WaitReady(limit time.Duration, ready func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %s exited: %s", ErrNotReady, p.name, p.LogTail())
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	return fmt.Errorf("%w: %s: %w; log: %s", ErrNotReady, p.name, last, p.LogTail())
}

// FreePorts binds n ports on loopback and answers the ones the kernel
// chose. All n are held until the last is chosen, so they differ; they are
// free again when it returns and the server binds them a moment later: the
// small race every "pick a port for a child" has.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// CaddyCommand answers the command that runs the caddy binary bin on the
// Caddyfile at path, with HOME and the XDG directories at home: caddy keeps
// its storage (the internal CA, autosaved configuration) there, so a run
// neither reads nor leaves anything in the user's own.
func CaddyCommand(bin, path, home string) *exec.Cmd {
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
	return cmd
}

// StartCaddy writes cfg as dir/Caddyfile and runs the caddy binary bin on
// it, logging to dir/caddy.log. A runner killed by a signal takes caddy
// along, so that no server outlives an interrupted run.
func StartCaddy(bin, dir string, cfg []byte) (*Proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating caddy's directory: %w", err)
	}
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("writing Caddyfile: %w", err)
	}
	cmd := CaddyCommand(bin, cf, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return Start("caddy", cmd, filepath.Join(dir, "caddy.log"), nil)
}
