// Package report holds what the benchmark commands' reports share: the
// description of the machine a run happened on, the nearest-rank quantile
// and median their latency figures are made of, and the writing of
// results.json and results.md, so that every command's files read alike.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Machine says where a run happened, in the JSON the socketio and
// transports commands write (a command may embed it and add fields).
type Machine struct {
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// DescribeMachine answers this machine and the Go runtime of the runner.
func DescribeMachine() Machine {
	return Machine{CPU: CPUModel(), CPUs: runtime.NumCPU(), Kernel: Kernel(), Go: runtime.Version()}
}

// CPUModel answers the first "model name" of /proc/cpuinfo; "" when there
// is none.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// Kernel answers the kernel release; "" when it cannot be read.
func Kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// WriteFiles stores results as indented JSON in dir/results.json and md in
// dir/results.md, creating dir.
func WriteFiles(dir string, results any, md []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), md, 0o644); err != nil {
		return fmt.Errorf("writing results.md: %w", err)
	}
	return nil
}
