package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A stored blob that streams fewer bytes than its size is an error, so the
// response is cut instead of ending cleanly short.
func TestExactReader(t *testing.T) {
	got, err := io.ReadAll(&exactReader{r: strings.NewReader("12345"), n: 5})
	if err != nil || string(got) != "12345" {
		t.Fatalf("whole: %q, %v", got, err)
	}
	got, err = io.ReadAll(&exactReader{r: strings.NewReader("123456789"), n: 4})
	if err != nil || string(got) != "1234" {
		t.Fatalf("limited: %q, %v", got, err)
	}
	_, err = io.ReadAll(&exactReader{r: strings.NewReader("123"), n: 5})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestFileSectionWriteTo: a hit's section goes out whole, from the file's
// offset, and a file that ends before the section does is an error, never a
// short clean copy.
func TestFileSectionWriteTo(t *testing.T) {
	data := []byte("0123456789")
	for _, tc := range []struct {
		name    string
		off, n  int64
		want    string
		wantErr error
	}{
		{"whole", 0, 10, "0123456789", nil},
		{"middle", 3, 4, "3456", nil},
		{"empty", 10, 0, "", nil},
		{"file shorter than the section", 4, 10, "456789", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(tc.off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := (&fileSection{f: f, n: tc.n}).WriteTo(&out)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if out.String() != tc.want || n != int64(len(tc.want)) {
				t.Errorf("copied %d bytes %q, want %q", n, out.String(), tc.want)
			}
		})
	}
}
