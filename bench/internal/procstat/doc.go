// Package procstat reads what the benchmarks measure of a server process:
// its resident set and CPU time from /proc, and its Go heap and stack in use
// after a forced collection from the pprof heap page of its admin endpoint.
// The benchmark commands share it so that their figures are read, and
// settled, by the same rules and can be compared.
package procstat
