package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantErr  bool
		wantSlow int
	}{
		{name: "defaults", args: nil, wantSlow: 250},
		{name: "short", args: []string{"-clients", "500", "-duration", "20s", "-warmup", "5s"}, wantSlow: 25},
		{name: "explicit slow", args: []string{"-clients", "10", "-slow", "3", "-stallers", "2"}, wantSlow: 3},
		{name: "too many clients", args: []string{"-clients", "16000"}, wantErr: true},
		{name: "slow and stallers exceed clients", args: []string{"-clients", "10", "-slow", "8", "-stallers", "3"}, wantErr: true},
		{name: "no rate", args: []string{"-rate", "0"}, wantErr: true},
		{name: "drops too often", args: []string{"-drop-every", "1ms"}, wantErr: true},
		{name: "no history", args: []string{"-history", "0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr {
				if !errors.Is(err, ErrBadFlag) {
					t.Fatalf("err = %v, want ErrBadFlag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.slow != tc.wantSlow {
				t.Fatalf("slow = %d, want %d", o.slow, tc.wantSlow)
			}
		})
	}
}

func TestAutoWarmup(t *testing.T) {
	tests := []struct {
		name                string
		history, keys, rate int
		want                time.Duration
	}{
		{name: "defaults: 12,800 messages at 200/s", history: 256, keys: 50, rate: 200, want: 70 * time.Second},
		{name: "a quick turnover still warms 30s", history: 16, keys: 10, rate: 1000, want: 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := autoWarmup(tc.history, tc.keys, tc.rate); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTrack(t *testing.T) {
	type step struct {
		op    string // registered, resume, message, resync
		epoch string
		seq   uint64
	}
	tests := []struct {
		name  string
		steps []step
		want  track
	}{
		{name: "in order from the first registration",
			steps: []step{{"registered", "e", 10}, {"message", "e", 11}, {"message", "e", 12}},
			want:  track{epoch: "e", last: 12, received: 2}},
		{name: "a resume replays what was missed",
			steps: []step{{"registered", "e", 0}, {"message", "e", 1}, {"resume", "e", 5}, {"message", "e", 2}, {"message", "e", 3}},
			want:  track{epoch: "e", last: 3, received: 3}},
		{name: "a skipped seq is lost",
			steps: []step{{"registered", "e", 0}, {"message", "e", 1}, {"message", "e", 4}},
			want:  track{epoch: "e", last: 4, lost: 2, received: 2}},
		{name: "an old seq is a duplicate",
			steps: []step{{"registered", "e", 3}, {"message", "e", 4}, {"message", "e", 4}},
			want:  track{epoch: "e", last: 4, dups: 1, received: 1}},
		{name: "a resync beyond the history is allowed",
			steps: []step{{"registered", "e", 0}, {"resync", "e", 300}, {"message", "e", 301}},
			want:  track{epoch: "e", last: 301, resyncs: 1, received: 1}},
		{name: "a resync the history covers is not",
			steps: []step{{"registered", "e", 0}, {"resync", "e", 100}},
			want:  track{epoch: "e", last: 100, resyncs: 1, badResync: 1}},
		{name: "a resync to a new epoch is allowed",
			steps: []step{{"registered", "e", 5}, {"resync", "f", 2}, {"message", "f", 3}},
			want:  track{epoch: "f", last: 3, resyncs: 1, received: 1}},
		{name: "a new epoch without a resync is a violation",
			steps: []step{{"registered", "e", 5}, {"message", "f", 6}},
			want:  track{epoch: "f", last: 6, epochBad: 1, received: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr track
			for _, s := range tc.steps {
				switch s.op {
				case "registered":
					tr.registered(s.epoch, s.seq, true)
				case "resume":
					tr.registered(s.epoch, s.seq, false)
				case "message":
					tr.message(s.epoch, s.seq)
				case "resync":
					tr.resync(s.epoch, s.seq, 256)
				}
			}
			if tr != tc.want {
				t.Fatalf("got %+v, want %+v", tr, tc.want)
			}
		})
	}
}

func TestStringAfter(t *testing.T) {
	msg := []byte(`{"type":"message","sdk_key":"soak-0001","epoch":"Ab_9","seq":44,"data":{"t":1}}`)
	tests := []struct {
		name, field, want string
	}{
		{name: "type", field: `"type":"`, want: "message"},
		{name: "key", field: `"sdk_key":"`, want: "soak-0001"},
		{name: "epoch", field: `"epoch":"`, want: "Ab_9"},
		{name: "absent", field: `"code":"`, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(stringAfter(msg, tc.field)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJudgeAndMarkdown(t *testing.T) {
	tests := []struct {
		name     string
		r        Results
		wantFail []string
	}{
		{name: "clean run passes",
			r: Results{Stallers: 1, Totals: Totals{StallerSlowCloses: 2}, Start: Snapshot{RSSKB: 1000}, End: Snapshot{RSSKB: 1050}, RSSChangePct: 5}},
		{name: "loss and growth fail",
			r:        Results{Totals: Totals{Lost: 3}, Start: Snapshot{RSSKB: 1000}, End: Snapshot{RSSKB: 1200}, RSSChangePct: 20},
			wantFail: []string{"3 messages lost", "RSS 1200 KiB at the end vs 1000 KiB"}},
		{name: "stallers never closed fail",
			r:        Results{Stallers: 2},
			wantFail: []string{"no staller was closed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.judge()
			if tc.r.Pass != (len(tc.wantFail) == 0) {
				t.Fatalf("pass = %v, failures %v", tc.r.Pass, tc.r.Failures)
			}
			md := string(tc.r.markdown())
			for _, w := range tc.wantFail {
				if !strings.Contains(strings.Join(tc.r.Failures, "; "), w) || !strings.Contains(md, w) {
					t.Fatalf("failures %v / markdown lack %q", tc.r.Failures, w)
				}
			}
		})
	}
}
