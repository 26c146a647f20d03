package cache

import (
	"errors"
	"io"
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
