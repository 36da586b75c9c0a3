package integration

import (
	"sync"
	"testing"
)

// dialLimit bounds the handshakes under way at once: enough to open
// thousands of connections quickly, few enough that a loaded 2-core machine
// does not time them out.
const dialLimit = 64

// inParallel runs fn(0) … fn(count-1), at most limit at a time, waits for
// all, and fails the test with the first error any returned.
func inParallel(t testing.TB, count, limit int, fn func(i int) error) {
	t.Helper()
	errs := make(chan error, count)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
