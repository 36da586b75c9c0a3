package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

// Configurations, as the results name them.
const (
	configSingle  = "single"
	configCluster = "cluster"
)

type options struct {
	configs     []string
	followers   int
	rate        int
	duration    time.Duration
	warmup      int
	tpPublishes int   // throughput: publishes per publisher count, in all
	publishers  []int // throughput: concurrent publishers
	runs        int
	deliver     time.Duration // how long the last receipt may trail the last publish
	out         string
	gatewayBin  string
	redisBin    string
	quick       bool
	keep        bool
}

func main() {
	benchcmd.Main("cluster", parseFlags, run)
}

// quickOptions is -quick: small enough for the package's test, still every
// measurement of the full run. It sets the flags the command line did not.
func quickOptions(o *options, set map[string]bool) {
	quick := []struct {
		flag  string
		apply func()
	}{
		{"followers", func() { o.followers = 50 }},
		{"rate", func() { o.rate = 100 }},
		{"duration", func() { o.duration = 2 * time.Second }},
		{"warmup", func() { o.warmup = 3 }},
		{"throughput-publishes", func() { o.tpPublishes = 400 }},
		{"runs", func() { o.runs = 1 }},
	}
	for _, q := range quick {
		if !set[q.flag] {
			q.apply()
		}
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	configs := fs.String("configs", configSingle+","+configCluster, "configurations to measure, in order")
	fs.IntVar(&o.followers, "followers", 200, "WebSocket followers of the latency key")
	fs.IntVar(&o.rate, "rate", 200, "latency: publishes per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "latency: how long to publish at -rate")
	fs.IntVar(&o.warmup, "warmup", 5, "latency: unmeasured publishes first, each awaited by every follower")
	fs.IntVar(&o.tpPublishes, "throughput-publishes", 10000, "throughput: publishes per publisher count, split among the publishers")
	pubs := fs.String("publishers", "1,8,32", "throughput: numbers of concurrent publishers")
	fs.IntVar(&o.runs, "runs", 3, "repetitions; figures are their medians")
	fs.DurationVar(&o.deliver, "deliver", 15*time.Second, "how long the last receipt may take after the last publish")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: stdout only")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
	fs.StringVar(&o.redisBin, "redis-server", "/usr/bin/redis-server", "the redis-server binary")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 50 followers, 100/s for 2s, 3 warm-ups, 400 publishes per publisher count, 1 run (unless given)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binary, Caddyfiles, logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		set := make(map[string]bool)
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickOptions(&o, set)
	}
	for _, c := range strings.Split(*configs, ",") {
		switch c = strings.TrimSpace(c); c {
		case configSingle, configCluster:
			o.configs = append(o.configs, c)
		default:
			return o, fmt.Errorf("%w: -configs %q: want %s or %s", ErrBadFlag, c, configSingle, configCluster)
		}
	}
	for _, f := range strings.Split(*pubs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			return o, fmt.Errorf("%w: -publishers %q: want 1..256", ErrBadFlag, f)
		}
		o.publishers = append(o.publishers, n)
	}
	// The followers' sockets, both ends, sit well under the 20,000 open
	// files of a process.
	if o.followers < 1 || o.followers > 5000 {
		return o, fmt.Errorf("%w: -followers %d: want 1..5000", ErrBadFlag, o.followers)
	}
	if o.rate < 1 || o.rate > 20000 || o.duration <= 0 || o.duration > 10*time.Minute {
		return o, fmt.Errorf("%w: -rate in 1..20000, -duration in (0, 10m]", ErrBadFlag)
	}
	if n := o.publishes(); n > 1_000_000 {
		return o, fmt.Errorf("%w: -rate × -duration = %d publishes: at most 1,000,000", ErrBadFlag, n)
	}
	if o.warmup < 1 || o.warmup > 1000 {
		return o, fmt.Errorf("%w: -warmup %d: want 1..1000", ErrBadFlag, o.warmup)
	}
	if o.tpPublishes < 1 || o.tpPublishes > 1_000_000 {
		return o, fmt.Errorf("%w: -throughput-publishes %d: want 1..1000000", ErrBadFlag, o.tpPublishes)
	}
	if o.runs < 1 || o.runs > 20 {
		return o, fmt.Errorf("%w: -runs %d: want 1..20", ErrBadFlag, o.runs)
	}
	return o, nil
}

// publishes answers the measured publishes of one latency measurement.
func (o options) publishes() int {
	return max(1, int(float64(o.rate)*o.duration.Seconds()))
}

func run(o options) error {
	began := time.Now()
	dir, bin, cleanup, err := benchcmd.Setup("pushgw-cluster-", o.keep, o.gatewayBin, true)
	if err != nil {
		return err
	}
	defer cleanup()
	res := Results{
		Command:             "go run ./bench/cluster " + strings.Join(os.Args[1:], " "),
		Started:             began.UTC().Format(time.RFC3339),
		Machine:             report.DescribeMachine(),
		Followers:           o.followers,
		Rate:                o.rate,
		DurationSeconds:     o.duration.Seconds(),
		Publishes:           o.publishes(),
		ThroughputPublishes: o.tpPublishes,
		Runs:                o.runs,
	}
	srv, err := startServers(bin, dir, o)
	if err != nil {
		return err
	}
	defer srv.stop()
	res.LoadStart = report.LoadAverage()
	// The configurations alternate run by run, so that load from
	// elsewhere on the machine falls on both alike.
	for run := 1; run <= o.runs; run++ {
		for _, c := range o.configs {
			if err := srv.alive(); err != nil {
				return err
			}
			res.Measurements = append(res.Measurements, srv.measure(c, run, o)...)
		}
		if run == 1 {
			res.RedisProbe = srv.probe()
		}
	}
	res.LoadEnd = report.LoadAverage()
	res.summarize()
	res.Seconds = time.Since(began).Seconds()
	log.Printf("done in %.0f s", res.Seconds)
	return res.write(o.out)
}
