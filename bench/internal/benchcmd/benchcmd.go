// Package benchcmd holds the set-up the benchmark commands share around
// their measurements: main's logging and error handling, the flag error,
// the module root, building caddy, the work directory and polling for a
// condition. Each command then differs only in what it measures.
package benchcmd

import (
	"errors"
	"fmt"
	"github.com/pushgateway/push_gateway/bench/internal/rlimit"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = errors.New("bad flag")

// ErrTimeout is returned by WaitFor when its condition does not hold in
// time.
var ErrTimeout = errors.New("timed out")

// Main logs with the time and prefix, parses the command line with parse
// and runs run with the options; either's error ends the process.
func Main[O any](prefix string, parse func(args []string) (O, error), run func(O) error) {
	log.SetFlags(log.Ltime)
	log.SetPrefix(prefix + ": ")
	o, err := parse(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// ModuleRoot answers the directory of the main module's go.mod: the
// commands build ./cmd/caddy and find their scripts from there.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("finding the module: run inside the repository")
	}
	return filepath.Dir(gomod), nil
}

// BuildCaddy builds ./cmd/caddy of the module at root into dir and answers
// the binary's path. It logs first: the build takes a while.
func BuildCaddy(root, dir string) (string, error) {
	log.Printf("building caddy")
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// WorkDir creates a temporary directory named after prefix for binaries,
// Caddyfiles and logs. With keep it logs where it is and cleanup leaves
// it, for looking at after the run; otherwise cleanup removes it.
func WorkDir(prefix string, keep bool) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("creating work dir: %w", err)
	}
	if keep {
		log.Printf("work dir %s", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// WaitFor polls cond every millisecond until it holds or limit is up: the
// clients' counters it watches change far more often than a server could
// be asked.
func WaitFor(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", ErrTimeout, limit)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return nil
}

// Setup is what every bench command does first: raise the open-files
// limit, make the work dir (see WorkDir) and, when build is set and bin
// names no binary, build caddy into it. It answers the work dir, the caddy
// binary to run and the cleanup the caller defers.
func Setup(prefix string, keep bool, bin string, build bool) (dir, caddy string, cleanup func(), err error) {
	if err := rlimit.RaiseNofile(); err != nil {
		return "", "", nil, err
	}
	dir, cleanup, err = WorkDir(prefix, keep)
	if err != nil {
		return "", "", nil, err
	}
	if bin != "" || !build {
		return dir, bin, cleanup, nil
	}
	root, err := ModuleRoot()
	if err == nil {
		bin, err = BuildCaddy(root, dir)
	}
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	return dir, bin, cleanup, nil
}
