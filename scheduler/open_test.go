package scheduler

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	bolt "go.etcd.io/bbolt"
)

// writeIndex creates a valid index of n entries at path and closes it.
func writeIndex(t *testing.T, path string, n int) {
	t.Helper()
	ix, err := Open(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ix.Record(Entry{Key: blobKey("library/alpine", fmt.Sprintf("layer-%d", i)), Size: 1})
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
}

func overwrite(off int64, b []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func truncate(size int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func rawUpdate(bucket, key, value string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucket)).Put([]byte(key), []byte(value))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// swapKeys swaps two keys within one page of the file: every entry still
// decodes, only bbolt's consistency check sees the b-tree out of order.
func swapKeys(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("blibrary/alpine\x00sha256:")
	n := len(prefix) + 64
	first := bytes.Index(raw, prefix)
	second := first + 1 + bytes.Index(raw[first+1:], prefix)
	if first < 0 || second <= first || first/4096 != second/4096 {
		t.Fatalf("no two keys in one page (%d, %d)", first, second)
	}
	a := bytes.Clone(raw[first : first+n])
	copy(raw[first:], raw[second:second+n])
	copy(raw[second:], a)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileSetAside(t *testing.T) {
	garbage := bytes.Repeat([]byte("not a bbolt file "), 4096)
	tests := []struct {
		name   string
		damage func(*testing.T, string)
	}{
		{"garbage", overwrite(0, garbage)},
		{"both meta pages zeroed", overwrite(0, make([]byte, 8192))},
		{"data pages overwritten", overwrite(8192, bytes.Repeat([]byte{0xff}, 64<<10))},
		{"truncated into the data", truncate(16 << 10)},
		{"truncated to a few bytes", truncate(100)},
		{"undecodable entry", rawUpdate("entries", "x", "y")},
		{"keys out of order", swapKeys},
		{"unknown format version", rawUpdate("meta", "version", "99")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scheduler.db")
			writeIndex(t, path, 2000)
			tt.damage(t, path)

			logger, logs := logtest.NewNullLogger()
			ix := openAt(t, path, WithLogger(logrus.NewEntry(logger)))
			if !ix.Rebuilt() {
				t.Fatal("damaged file opened as is")
			}
			if w := logs.LastEntry(); w == nil || w.Level != logrus.WarnLevel || w.Data["path"] != path {
				t.Errorf("no warning naming the file: %+v", w)
			} else {
				t.Logf("%s: %v", w.Message, w.Data[logrus.ErrorKey])
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("set-aside files: %v, want one", aside)
			}
			if ix.Len() != 0 {
				t.Errorf("rebuilt index has %d entries", ix.Len())
			}
			ix.Record(Entry{Key: blobKey("r", "after"), Size: 1})
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}
			ix = openAt(t, path)
			if ix.Rebuilt() || ix.Len() != 1 {
				t.Errorf("new index after reopen: rebuilt %v, %d entries; want false, 1", ix.Rebuilt(), ix.Len())
			}
		})
	}
}

// Cut anywhere, the file either opens whole (only slack was cut) or is set aside;
// never a crash, never a partial index.
func TestTruncatedAnywhere(t *testing.T) {
	src := filepath.Join(t.TempDir(), "full.db")
	writeIndex(t, src, 2000)
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := 0
	for size := 0; size < len(raw); size += 5*4096 + 123 {
		path := filepath.Join(t.TempDir(), "cut.db")
		if err := os.WriteFile(path, raw[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		ix, err := Open(path, WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("cut at %d: %v", size, err)
		}
		if ix.Rebuilt() {
			rebuilt++
		} else if n := ix.Len(); n != 0 && n != 2000 {
			t.Errorf("cut at %d: opened with %d of 2000 entries", size, n)
		}
		_ = ix.Close()
	}
	if rebuilt == 0 {
		t.Error("no cut was detected")
	}
}

func TestOpenFailsWhenLocked(t *testing.T) {
	_, path := openTest(t)
	start := time.Now()
	ix, err := Open(path, WithLogger(quietLogger()))
	if err == nil {
		ix.Close()
		t.Fatal("second Open of an open index succeeded")
	}
	checkLockError(t, err, path, time.Since(start))
	if _, err := os.Stat(path); err != nil {
		t.Errorf("index file after a failed Open: %v", err)
	}
}

func checkLockError(t *testing.T, err error, path string, took time.Duration) {
	t.Helper()
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v; want ErrInUse naming %s", err, path)
	}
	if took > 2*time.Second {
		t.Errorf("Open took %v to fail", took)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Errorf("a locked index was set aside as corrupt: %v", aside)
	}
}

// crashChildEnv makes the test binary a child that writes an index until it is
// killed; see TestCrashChild.
const crashChildEnv = "SCHEDULER_CRASH_CHILD_PATH"

// TestKill9 runs a child process that records and flushes in a loop, kills it with
// SIGKILL mid-stream, and reopens the index: it must open cleanly with everything
// the child had flushed before it said so.
func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scheduler.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "FLUSHED" {
				ready <- nil
				break
			}
		}
		ready <- fmt.Errorf("child ended before flushing: %v", sc.Err())
		for sc.Scan() { // keep the pipe drained
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child did not flush within 20s")
	}

	// While the child holds it, another process must not open the index.
	start := time.Now()
	if ix, err := Open(path, WithLogger(quietLogger())); err == nil {
		ix.Close()
		t.Fatal("Open succeeded while another process holds the index")
	} else {
		checkLockError(t, err, path, time.Since(start))
	}

	time.Sleep(20 * time.Millisecond) // let it be mid-flush, likely
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	ix := openAt(t, path)
	if ix.Rebuilt() {
		t.Fatal("index corrupt after kill -9")
	}
	for i := range 100 {
		if _, ok := ix.Get(blobKey("r", fmt.Sprintf("flushed-%d", i))); !ok {
			t.Fatalf("flushed entry %d lost", i)
		}
	}
	t.Logf("%d entries survived", ix.Len())
}

// TestCrashChild is the child of TestKill9; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("the child process of TestKill9")
	}
	ix, err := Open(path, WithFlushInterval(time.Hour), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		ix.Record(Entry{Key: blobKey("r", fmt.Sprintf("flushed-%d", i)), Size: 1})
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("FLUSHED")
	deadline := time.Now().Add(time.Minute) // bounded even if nobody kills it
	for i := 0; time.Now().Before(deadline); i++ {
		ix.Record(Entry{Key: blobKey("r", fmt.Sprintf("more-%d", i)), Size: 1})
		ix.Touch(blobKey("r", fmt.Sprintf("flushed-%d", i%100)))
		if i%50 == 0 {
			if err := ix.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
