package main

// Result is one server at one N.
type Result struct {
	Server    string  `json:"server"`
	N         int     `json:"n"`
	Repeat    int     `json:"repeat,omitempty"` // which run of the sweep, from 1; 0 in medians
	Connected int     `json:"connected"`
	ConnectS  float64 `json:"connect_seconds"`
	Procs     int     `json:"loadgen_processes"`
	Error     string  `json:"error,omitempty"`

	RSSBeforeKB     int64   `json:"rss_before_kb"`
	RSSAfterKB      int64   `json:"rss_after_kb"`
	RSSSettled      bool    `json:"rss_settled"`
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes"`
	HeapPerConn     float64 `json:"go_heap_inuse_per_conn_bytes"`  // after a forced GC
	StackPerConn    float64 `json:"go_stack_inuse_per_conn_bytes"` // after a forced GC
	MemStatsError   string  `json:"memstats_error,omitempty"`
	IdleCPUPct      float64 `json:"idle_cpu_percent"` // server CPU while N clients sit idle (the RSS settle window)
	GoroutinesIdle0 int     `json:"goroutines_before"`
	GoroutinesIdleN int     `json:"goroutines_connected"`

	Broadcasts []Broadcast `json:"broadcasts"`
	Median     Broadcast   `json:"median"` // field by field medians over Broadcasts

	ServerCPUS         float64 `json:"server_cpu_seconds"`
	ServerCPUPerDelUS  float64 `json:"server_cpu_us_per_delivery"`
	LoadgenCPUS        float64 `json:"loadgen_cpu_seconds"`
	LoadgenCPUPerDelUS float64 `json:"loadgen_cpu_us_per_delivery"`
	Deliveries         int64   `json:"deliveries"`

	// Burst: messages published back to back, one publish call
	// after the other; from the first publish to the last receipt.
	Burst            int     `json:"burst_messages"`
	BurstS           float64 `json:"burst_seconds"`
	BurstDeliveries  int64   `json:"burst_deliveries"`
	BurstDelPS       float64 `json:"burst_deliveries_per_s"`
	BurstCPUPerDelUS float64 `json:"burst_server_cpu_us_per_delivery"`
	// RSS after the burst, after a forced GC and settling, against the
	// RSS with the N clients idle before it.
	RSSAfterBurstKB   int64   `json:"rss_after_burst_kb"`
	BurstRSSGrowthPct float64 `json:"burst_rss_growth_percent"`

	Storm  Storm  `json:"storm"`
	Steady Steady `json:"steady"`

	Lost       int64          `json:"lost"`
	Duplicates int64          `json:"duplicates"`
	Closes     map[string]int `json:"closes,omitempty"`
	Dropped    int64          `json:"server_dropped"`

	// Stopping the server (SIGINT) with every client still connected.
	ShutdownS      float64        `json:"shutdown_seconds"`
	ShutdownCloses map[string]int `json:"shutdown_closes,omitempty"` // what the clients saw, by close code
	ShutdownError  string         `json:"shutdown_error,omitempty"`
}

// Broadcast is one message to all N, in milliseconds from the publisher's
// stamp to each client's receipt.
type Broadcast struct {
	Seq          int64   `json:"seq,omitempty"`
	Received     int64   `json:"received"`
	Expected     int64   `json:"expected"`
	PublishMS    float64 `json:"publish_ms"` // the publish call's own round trip
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	P999MS       float64 `json:"p999_ms"`
	LastMS       float64 `json:"last_ms"` // time to the last receipt
	DeliveriesPS float64 `json:"deliveries_per_s"`
}

// Storm is every client dropped at once and reconnecting at once, resuming
// with since/epoch where the protocol has them.
type Storm struct {
	Missed       int     `json:"missed"`         // messages published while the clients were away
	Connected    int     `json:"connected"`      // clients back
	Seconds      float64 `json:"seconds"`        // from the first dial to the last registration
	PerS         float64 `json:"connects_per_s"` // Connected / Seconds
	HandshakeP50 float64 `json:"handshake_p50_ms"`
	HandshakeP99 float64 `json:"handshake_p99_ms"`
	Resumes      bool    `json:"resumes"` // the client asked for what it missed (native: since/epoch)
	Lost         int64   `json:"lost"`    // messages a resuming client never got (must be 0)
	Duplicates   int64   `json:"duplicates"`
	Resyncs      int64   `json:"resyncs"`
}

// Steady is many keys with a fixed publish rate: every message to one key's
// followers, latency from the publisher's stamp to each receipt.
type Steady struct {
	Keys        int     `json:"keys"`
	Rate        float64 `json:"publishes_per_s"` // asked
	Seconds     float64 `json:"seconds"`         // the publishing window
	Publishes   int64   `json:"publishes"`
	Expected    int64   `json:"expected"` // deliveries the followers were owed
	Deliveries  int64   `json:"deliveries"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	P999MS      float64 `json:"p999_ms"`
	MaxMS       float64 `json:"max_ms"`
	PublishP99  float64 `json:"publish_call_p99_ms"`
	DelPS       float64 `json:"deliveries_per_s"`
	ServerCores float64 `json:"server_cores"` // server CPU seconds / window seconds
	DelPerCoreS float64 `json:"deliveries_per_core_s"`
	CPUPerDelUS float64 `json:"server_cpu_us_per_delivery"`
	LoadgenUS   float64 `json:"loadgen_cpu_us_per_delivery"`
}
