package module

// Golden tests of caddyfile-examples/: every Caddyfile there (named
// Caddyfile, or <name>.Caddyfile when a directory holds several, as
// cluster/ does) adapts, matches the JSON next to it (<file>.json; go test
// ./module/ -run Examples -update rewrites them) and loads.

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite the caddyfile-examples Caddyfile.json goldens")

// exampleEnv are the placeholders the examples read; the goldens hold their
// defaults.
var exampleEnv = []string{"PORT", "ADMIN", "HTTP_PORT", "HTTPS_PORT", "BACKEND", "DEMO_ROOT", "REDIS_URL"}

// examplesDir holds the examples, one directory each.
const examplesDir = "../caddyfile-examples"

// examples returns every Caddyfile and *.Caddyfile under examplesDir.
func examples(tb testing.TB) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (d.Name() == "Caddyfile" || strings.HasSuffix(d.Name(), ".Caddyfile")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("listing examples: %v", err)
	}
	if len(files) == 0 {
		tb.Fatal("no Caddyfile found")
	}
	return files
}

// exampleName names an example's subtest: its directory, plus the file's
// name when that is not plain Caddyfile (cluster/node-a.Caddyfile).
func exampleName(path string) string {
	name := filepath.Base(filepath.Dir(path))
	if base := filepath.Base(path); base != "Caddyfile" {
		name += "/" + base
	}
	return name
}

// unsetEnv clears the examples' placeholders for the test's duration.
func unsetEnv(t *testing.T) {
	t.Helper()
	for _, name := range exampleEnv {
		t.Setenv(name, "") // registers the restore
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

// adaptExample adapts one Caddyfile as `caddy adapt` does and indents the JSON.
func adaptExample(tb testing.TB, path string, input []byte) []byte {
	tb.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt(input, map[string]any{"filename": path})
	if err != nil {
		tb.Fatalf("adapting %s: %v", path, err)
	}
	for _, w := range warnings {
		tb.Errorf("adapting %s: warning: %s", path, w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		tb.Fatalf("indenting %s: %v", path, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func TestExamplesAdapt(t *testing.T) {
	unsetEnv(t)
	for _, path := range examples(t) {
		t.Run(exampleName(path), func(t *testing.T) {
			input, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if formatted := caddyfile.Format(input); !bytes.Equal(formatted, input) {
				t.Errorf("%s is not formatted; run: caddy fmt --overwrite %s", path, path)
			}
			got := adaptExample(t, path, input)
			golden := path + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run go test -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s adapts to\n%s\nwant (%s; go test -update rewrites it)\n%s", path, got, golden, want)
			}
		})
	}
}

// TestExamplesValidate loads every example as `caddy validate` does:
// provisioning and validating each module, push_gateway's app included,
// without binding any port.
func TestExamplesValidate(t *testing.T) {
	unsetEnv(t)
	for _, path := range examples(t) {
		t.Run(exampleName(path), func(t *testing.T) {
			input, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(adaptExample(t, path, input), &cfg); err != nil {
				t.Fatalf("decoding adapted %s: %v", path, err)
			}
			// keep the internal CA of tls-internal out of the user's data dir
			storage, err := json.Marshal(map[string]string{"module": "file_system", "root": t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			cfg.StorageRaw = storage
			if err := caddy.Validate(&cfg); err != nil {
				t.Fatalf("validating %s: %v", path, err)
			}
		})
	}
}

// TestEveryPortIsAPlaceholder: the integration tests run the examples on
// free ports, which only works when no listen address is hard-coded.
func TestEveryPortIsAPlaceholder(t *testing.T) {
	for _, path := range examples(t) {
		input, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(input), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, word := range strings.Fields(line) {
				if strings.HasPrefix(word, ":") && !strings.HasPrefix(word, ":{$") {
					t.Errorf("%s:%d: hard-coded port %q; use {$PORT:…}", path, i+1, word)
				}
			}
			for _, opt := range []string{"admin", "http_port", "https_port"} {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == opt && !strings.HasPrefix(f[1], "{$") {
					t.Errorf("%s:%d: %s %q is hard-coded; use an env placeholder", path, i+1, opt, f[1])
				}
			}
		}
	}
}
