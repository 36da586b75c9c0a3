package benchcmd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	calls := 0
	if err := WaitFor(time.Second, func() bool { calls++; return calls == 3 }); err != nil || calls != 3 {
		t.Fatalf("WaitFor = %v after %d calls", err, calls)
	}
	if err := WaitFor(5*time.Millisecond, func() bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitFor = %v, want ErrTimeout", err)
	}
}

func TestWorkDir(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, keep := range []bool{false, true} {
		dir, cleanup, err := WorkDir("pushgw-test-", keep)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(dir)[:len("pushgw-test-")] != "pushgw-test-" {
			t.Fatalf("dir %s", dir)
		}
		cleanup()
		if _, err := os.Stat(dir); (err == nil) != keep {
			t.Fatalf("keep %v: after cleanup, stat: %v", keep, err)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bench", "internal", "benchcmd")); err != nil {
		t.Fatalf("root %s: %v", root, err)
	}
}
