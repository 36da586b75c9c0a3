package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	benchreport "github.com/pushgateway/push_gateway/bench/internal/report"
)

// Machine describes where the run happened. It keeps its own JSON (and the
// go command's version rather than the runner's runtime) since docs/bench
// reads results written before the other commands existed.
type Machine struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model"`
	MemTotalKB   int64  `json:"mem_total_kb"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	Node         string `json:"node_version,omitempty"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: benchreport.CPUModel(), Kernel: benchreport.Kernel(), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotalKB, _ = procstat.StatusField(b, "MemTotal:")
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	return m
}

// loadAvg answers the first three fields of /proc/loadavg: the machine is
// shared, and a busy neighbour shows up in the latencies.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
