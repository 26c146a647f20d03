// Command get is the benchmark's HTTP client: c clients GET one URL at once, each on
// its own connection, n times in a row, and it prints one JSON line with the time to
// first byte and the total time of every transfer, the wall time and the MiB/s.
// Given several URLs (the replicas of a cluster, no load balancer), client i GETs
// URL i mod their number: the clients are spread round-robin.
//
//	get -c 32 -n 1 http://127.0.0.1:PORT/v2/repo/blobs/sha256:...
//	get -c 8 http://127.0.0.1:P1/v2/... http://127.0.0.1:P2/v2/... http://127.0.0.1:P3/v2/...
//
// Every body is read to the end and its length checked against Content-Length (and
// -size when given); any failure exits 1. -sha256 also checks the digest.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

type result struct {
	Clients  int       `json:"clients"`
	Rounds   int       `json:"rounds"`
	Bytes    int64     `json:"bytes"`
	WallS    float64   `json:"wall_s"`
	MiBps    float64   `json:"mib_s"`
	TTFBms   []float64 `json:"ttfb_ms"`
	TotalS   []float64 `json:"total_s"`
	MaxS     float64   `json:"max_s"`
	MinS     float64   `json:"min_s"`
	MaxTTFBm float64   `json:"max_ttfb_ms"`
}

func main() {
	c := flag.Int("c", 1, "concurrent clients")
	n := flag.Int("n", 1, "transfers per client, one after another")
	size := flag.Int64("size", -1, "expected body length (-1: Content-Length only)")
	check := flag.String("sha256", "", "expected sha256 hex of the body (slower)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: get [-c N] [-n N] [-size B] [-sha256 HEX] URL [URL...]")
		os.Exit(2)
	}
	urls := flag.Args()
	tr := &http.Transport{MaxIdleConnsPerHost: *c, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: *timeout}

	res := result{Clients: *c, Rounds: *n}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed error
	start := make(chan struct{})
	for i := range *c {
		url := urls[i%len(urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			<-start
			for range *n {
				ttfb, total, nb, err := fetch(client, url, buf, *size, *check)
				mu.Lock()
				if err != nil && failed == nil {
					failed = err
				}
				res.Bytes += nb
				res.TTFBms = append(res.TTFBms, ttfb.Seconds()*1000)
				res.TotalS = append(res.TotalS, total.Seconds())
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.WallS = time.Since(t0).Seconds()
	if failed != nil {
		fmt.Fprintln(os.Stderr, "get:", failed)
		os.Exit(1)
	}
	res.MiBps = float64(res.Bytes) / (1 << 20) / res.WallS
	res.MaxS, res.MinS = slices.Max(res.TotalS), slices.Min(res.TotalS)
	res.MaxTTFBm = slices.Max(res.TTFBms)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// fetch GETs url once and reads the body to the end.
func fetch(client *http.Client, url string, buf []byte, size int64, sum string) (ttfb, total time.Duration, n int64, err error) {
	t0 := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var h hash.Hash
	if sum != "" {
		h = sha256.New()
	}
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 && n == 0 {
			ttfb = time.Since(t0)
		}
		if h != nil {
			h.Write(buf[:m])
		}
		n += int64(m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return ttfb, time.Since(t0), n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, rerr)
		}
	}
	total = time.Since(t0)
	switch {
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		err = fmt.Errorf("GET %s: %d bytes, Content-Length %d", url, n, resp.ContentLength)
	case size >= 0 && n != size:
		err = fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
	case h != nil && hex.EncodeToString(h.Sum(nil)) != sum:
		err = fmt.Errorf("GET %s: body does not hash to %s", url, sum)
	}
	return ttfb, total, n, err
}
