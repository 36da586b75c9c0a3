package main

import (
	"flag"
	"fmt"
	"log"
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
	nameGateway    = "push_gateway"
	nameBaseline   = "baseline"
	nameGatewaySIO = "push_gateway_socketio"
	nameSocketIO   = "socketio"
)

// allServers is every server the command knows, in the order it runs them.
var allServers = []string{nameGateway, nameBaseline, nameGatewaySIO, nameSocketIO}

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

type options struct {
	args       []string // as given, for the report
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
	node       string
	repeat     int
	storm      int
	stormConc  int
	steadyKeys int
	steadyRate float64
	steadyFor  time.Duration
	keep       bool
}

func main() {
	benchcmd.Main("bench", parseFlags, run)
}

func parseFlags(args []string) (options, error) {
	o := options{args: args}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	ns := fs.String("n", "1000,5000,10000,19000", "numbers of idle connections, comma-separated (at most 19500: the server holds them within 20000 open files)")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: write nothing")
	servers := fs.String("servers", strings.Join(allServers, ","), "servers to measure")
	fs.IntVar(&o.repeat, "repeat", 3, "runs of the whole sweep; the tables show medians over them")
	fs.IntVar(&o.broadcasts, "broadcasts", 10, "measured broadcasts per server and N")
	fs.IntVar(&o.warmup, "warmup", 2, "unmeasured broadcasts first")
	fs.IntVar(&o.burst, "burst", 50, "messages published back to back after the broadcasts (0: none)")
	fs.IntVar(&o.storm, "storm", 5, "messages published while every client is away in the reconnect storm (0: no storm)")
	fs.IntVar(&o.stormConc, "storm-concurrency", 512, "handshakes in flight per load generator in the reconnect storm")
	fs.IntVar(&o.steadyKeys, "steady-keys", 100, "keys of the steady load (0: no steady load)")
	fs.Float64Var(&o.steadyRate, "steady-rate", 300, "publishes per second of the steady load")
	fs.DurationVar(&o.steadyFor, "steady-for", 10*time.Second, "how long the steady load publishes")
	fs.StringVar(&o.node, "node", "node", "the node binary for the socket.io reference")
	fs.IntVar(&o.perProc, "per-proc", 9000, "connections per load generator process at most")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long a broadcast may take to reach everyone")
	fs.DurationVar(&o.budget, "budget", 80*time.Minute, "skip the remaining measurements once this is spent")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
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
		if s = strings.TrimSpace(s); !slices.Contains(allServers, s) {
			return o, fmt.Errorf("%w: -servers %q: want some of %s", ErrBadFlag, s, strings.Join(allServers, ","))
		}
		o.servers = append(o.servers, s)
	}
	if o.broadcasts < 1 || o.warmup < 0 || o.burst < 0 || o.burst > 200 || o.perProc < 1 || o.perProc > 19000 ||
		o.repeat < 1 || o.storm < 0 || o.storm > 200 || o.stormConc < 1 || o.steadyKeys < 0 || o.steadyRate <= 0 || o.steadyFor <= 0 {
		return o, fmt.Errorf("%w: -broadcasts >= 1, -warmup >= 0, -burst and -storm in 0..200 (under the gateway's queue of 256), "+
			"-per-proc in 1..19000, -repeat >= 1, -storm-concurrency >= 1, -steady-keys >= 0, -steady-rate and -steady-for > 0", ErrBadFlag)
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
		nameGateway:    func(name string) (*server, error) { return startCaddy(bins.caddy, dir, name, protoNative) },
		nameBaseline:   func(name string) (*server, error) { return startBaseline(bins.baseline, dir, name) },
		nameGatewaySIO: func(name string) (*server, error) { return startCaddy(bins.caddy, dir, name, protoSocketIO) },
	}
	if slices.Contains(o.servers, nameSocketIO) {
		script, err := scriptPath(root)
		if err != nil {
			return err
		}
		if machine.Node, err = nodeVersion(o.node); err != nil {
			return err
		}
		starters[nameSocketIO] = func(name string) (*server, error) { return startReference(o.node, script, dir, name) }
	}

	// The sweep runs -repeat times over; repeats are the outer loop so that
	// a noisy minute on this shared machine spoils one sample of each
	// figure rather than three of one.
	var runs []Result
	measured := 0
	for rep := 1; rep <= o.repeat; rep++ {
		for _, n := range o.ns {
			for _, s := range o.servers {
				measured++
				if time.Since(started) > o.budget {
					log.Printf("%s n=%d #%d: skipped, -budget %s spent", s, n, rep, o.budget)
					runs = append(runs, Result{Server: s, N: n, Repeat: rep, Error: "skipped: budget spent"})
					continue
				}
				p := plan{
					server: s, start: starters[s], n: n, perProc: o.perProc,
					warmup: o.warmup, broadcasts: o.broadcasts, burst: o.burst, waitLimit: o.wait,
					storm: o.storm, stormConc: o.stormConc,
					steadyKeys: o.steadyKeys, steadyRate: o.steadyRate, steadyFor: o.steadyFor,
					loadgenBin: bins.loadgen, dir: dir, repeat: rep, sourceShift: measured * 31,
				}
				key := fmt.Sprintf("bench-%s-%d-%d-%d", s, n, rep, started.Unix())
				runs = append(runs, measure(p, key, log.Printf))
			}
		}
	}
	machine.LoadAvgEnd = loadAvg()

	rep := report{
		Command: strings.TrimSpace("go run ./bench/run " + strings.Join(o.args, " ")),
		Started: started.UTC().Format(time.RFC3339),
		Seconds: time.Since(started).Seconds(),
		Machine: machine,
		Repeat:  o.repeat,
		Results: medians(runs),
		Runs:    runs,
		Settings: fmt.Sprintf("%d runs of the sweep, medians of them shown; in each, %d measured broadcasts after %d warm-up (their medians), "+
			"a burst of %d messages published back to back, a reconnect storm with %d messages published while the clients are away "+
			"(%d handshakes in flight per generator), and a steady load of %g publishes/s over %d keys for %s; "+
			"<= %d connections per load generator process",
			o.repeat, o.broadcasts, o.warmup, o.burst, o.storm, o.stormConc, o.steadyRate, o.steadyKeys, o.steadyFor, o.perProc),
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
	needCaddy := slices.Contains(o.servers, nameGateway) || slices.Contains(o.servers, nameGatewaySIO)
	if needCaddy && o.gatewayBin != "" {
		b.caddy = o.gatewayBin
	} else if needCaddy {
		pkgs[b.caddy] = "./cmd/caddy"
	}
	for out, pkg := range pkgs {
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("building %s: %w: %s", pkg, err, msg)
		}
		log.Printf("built %s in %.0fs", pkg, time.Since(start).Seconds())
	}
	return b, nil
}
