package report

import "testing"

func TestParseLoadAverage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "proc line", in: "9.10 3.66 1.84 3/412 12345\n", want: "9.10 3.66 1.84"},
		{name: "short", in: "1.0 2.0", want: ""},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseLoadAverage(tt.in); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
