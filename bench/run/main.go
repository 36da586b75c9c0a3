package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/rlimit"
)

// Server names, as they appear in the results.
const (
	nameGateway  = "push_gateway"
	nameBaseline = "baseline"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

type options struct {
	ns         []int
	out        string
	servers    []string
	broadcasts int
	warmup     int
	burst      int
	perProc    int
	wait       time.Duration
	budget     time.Duration
	gatewayBin string
	standIn    bool
	addModule  bool
	keep       bool
}

func main() {
	benchcmd.Main("bench", parseFlags, run)
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	ns := fs.String("n", "1000,5000,10000,19000", "numbers of idle connections, comma-separated (at most 19500: the server holds them within 20000 open files)")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: write nothing")
	servers := fs.String("servers", nameGateway+","+nameBaseline, "servers to measure")
	fs.IntVar(&o.broadcasts, "broadcasts", 20, "measured broadcasts per server and N")
	fs.IntVar(&o.warmup, "warmup", 2, "unmeasured broadcasts first")
	fs.IntVar(&o.burst, "burst", 30, "messages published back to back after the broadcasts (0: none)")
	fs.IntVar(&o.perProc, "per-proc", 9000, "connections per load generator process at most")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long a broadcast may take to reach everyone")
	fs.DurationVar(&o.budget, "budget", 9*time.Minute, "skip the remaining measurements once this is spent")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
	fs.BoolVar(&o.standIn, "stand-in", false, "run the baseline in the push_gateway slot (to test the runner)")
	fs.BoolVar(&o.addModule, "add-module", false, "build ./cmd/caddy with a main.go overlay that imports ./module (for while cmd/caddy does not)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, Caddyfiles, logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 19500 {
			return o, fmt.Errorf("%w: -n %q: want 1..19500", ErrBadFlag, f)
		}
		o.ns = append(o.ns, n)
	}
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != nameGateway && s != nameBaseline {
			return o, fmt.Errorf("%w: -servers %q: want %s or %s", ErrBadFlag, s, nameGateway, nameBaseline)
		}
		o.servers = append(o.servers, s)
	}
	if o.broadcasts < 1 || o.warmup < 0 || o.burst < 0 || o.burst > 200 || o.perProc < 1 || o.perProc > 19000 {
		return o, fmt.Errorf("%w: -broadcasts >= 1, -warmup >= 0, -burst in 0..200 (under the gateway's queue of 256), -per-proc in 1..19000", ErrBadFlag)
	}
	return o, nil
}

func run(o options) error {
	started := time.Now()
	if err := rlimit.RaiseNofile(); err != nil {
		return err
	}
	root, err := benchcmd.ModuleRoot()
	if err != nil {
		return err
	}
	dir, cleanup, err := benchcmd.WorkDir("pushgw-bench-", o.keep)
	if err != nil {
		return err
	}
	defer cleanup()
	machine := describeMachine()

	bins, err := build(root, dir, o)
	if err != nil {
		return err
	}
	starters := map[string]func(string) (*server, error){
		nameBaseline: func(name string) (*server, error) { return startBaseline(bins.baseline, dir, name) },
		nameGateway:  func(name string) (*server, error) { return startCaddy(bins.caddy, dir, name) },
	}
	if o.standIn {
		starters[nameGateway] = starters[nameBaseline]
	}

	var results []Result
	run := 0
	for _, n := range o.ns {
		for _, s := range o.servers {
			run++
			if time.Since(started) > o.budget {
				log.Printf("%s n=%d: skipped, -budget %s spent", s, n, o.budget)
				results = append(results, Result{Server: s, N: n, Error: "skipped: budget spent"})
				continue
			}
			p := plan{
				server: s, start: starters[s], n: n, perProc: o.perProc,
				warmup: o.warmup, broadcasts: o.broadcasts, burst: o.burst, waitLimit: o.wait,
				loadgenBin: bins.loadgen, dir: dir,
			}
			key := fmt.Sprintf("bench-%s-%d-%d", s, n, started.Unix())
			// Each measurement starts at another source address so that the
			// previous one's TIME_WAIT sockets are spread thin.
			results = append(results, measure(p, key, run*31, log.Printf))
		}
	}
	machine.LoadAvgEnd = loadAvg()

	rep := report{
		Command: "go run ./bench/run " + strings.Join(os.Args[1:], " "),
		Started: started.UTC().Format(time.RFC3339),
		Seconds: time.Since(started).Seconds(),
		Machine: machine,
		StandIn: o.standIn,
		Results: results,
		Settings: fmt.Sprintf("%d measured broadcasts after %d warm-up, medians shown; then a burst of %d messages published back to back; <= %d connections per load generator process",
			o.broadcasts, o.warmup, o.burst, o.perProc),
	}
	fmt.Print(rep.markdown())
	if o.out == "" {
		return nil
	}
	if err := rep.write(o.out); err != nil {
		return err
	}
	log.Printf("wrote %s and %s", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "results.md"))
	refreshPlots(o.out)
	return nil
}

type binaries struct{ caddy, baseline, loadgen string }

// build compiles what the run needs into dir.
func build(root, dir string, o options) (binaries, error) {
	b := binaries{
		caddy:    filepath.Join(dir, "caddy"),
		baseline: filepath.Join(dir, "baseline"),
		loadgen:  filepath.Join(dir, "loadgen"),
	}
	pkgs := map[string]string{b.baseline: "./bench/baseline", b.loadgen: "./bench/loadgen"}
	needCaddy := !o.standIn && slices.Contains(o.servers, nameGateway)
	if needCaddy && o.gatewayBin != "" {
		b.caddy = o.gatewayBin
	} else if needCaddy {
		pkgs[b.caddy] = "./cmd/caddy"
	}
	for out, pkg := range pkgs {
		start := time.Now()
		args := []string{"build", "-o", out}
		if pkg == "./cmd/caddy" && o.addModule {
			overlay, err := moduleOverlay(root, dir)
			if err != nil {
				return b, err
			}
			args = append(args, "-overlay", overlay)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("building %s: %w: %s", pkg, err, msg)
		}
		log.Printf("built %s in %.0fs", pkg, time.Since(start).Seconds())
	}
	if needCaddy {
		out, err := exec.Command(b.caddy, "list-modules").Output()
		if err != nil {
			return b, fmt.Errorf("listing caddy's modules: %w", err)
		}
		if !strings.Contains(string(out), "http.handlers.push_gateway") {
			return b, fmt.Errorf("%w: %s has no http.handlers.push_gateway; "+
				"import the module in cmd/caddy, or pass -add-module", ErrBadFlag, b.caddy)
		}
	}
	return b, nil
}

// caddyMain is cmd/caddy/main.go with the module imported.
const caddyMain = `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pushgateway/push_gateway/module"
)

func main() {
	caddycmd.Main()
}
`

// moduleOverlay writes a `go build -overlay` file that replaces
// cmd/caddy/main.go with caddyMain, leaving the repository untouched.
func moduleOverlay(root, dir string) (string, error) {
	mainGo := filepath.Join(dir, "caddy-main.go")
	if err := os.WriteFile(mainGo, []byte(caddyMain), 0o644); err != nil {
		return "", fmt.Errorf("writing overlay main: %w", err)
	}
	b, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, "cmd", "caddy", "main.go"): mainGo},
	})
	if err != nil {
		return "", fmt.Errorf("encoding overlay: %w", err)
	}
	overlay := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		return "", fmt.Errorf("writing overlay: %w", err)
	}
	return overlay, nil
}
