// Command seed fills the benchmark's upstream registry: random blobs pushed with the
// registry API (POST an upload, PUT ?digest= with the body), and a multi-layer image
// of uncompressed tar layers written with go-containerregistry.
//
//	seed -registry http://127.0.0.1:PORT -repo bench/blobs warm128=128 cold512=512 ...
//	seed -registry http://127.0.0.1:PORT -image bench/image -images 3 -layers 8 -layer-mib 16
//
// It prints one line per blob, "NAME DIGEST SIZE", and one per image (tags t0, t1, ...,
// each with its own random layers) "image REPO:TAG DIGEST TOTAL_LAYER_BYTES".
package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	registry := flag.String("registry", "", "registry base URL, http://host:port")
	repo := flag.String("repo", "bench/blobs", "repository for the blobs")
	image := flag.String("image", "", "also push images to this repository")
	images := flag.Int("images", 1, "how many images (tags t0, t1, ...)")
	layers := flag.Int("layers", 8, "image layers")
	layerMiB := flag.Int("layer-mib", 16, "size of each image layer in MiB")
	flag.Parse()
	if *registry == "" {
		fatal(fmt.Errorf("-registry is required"))
	}
	for _, arg := range flag.Args() {
		nm, mib, ok := strings.Cut(arg, "=")
		size, err := strconv.ParseFloat(mib, 64)
		if !ok || err != nil || size <= 0 {
			fatal(fmt.Errorf("blob %q: want NAME=MiB", arg))
		}
		n := int64(size * (1 << 20))
		dgst, err := pushBlob(*registry, *repo, n)
		if err != nil {
			fatal(fmt.Errorf("blob %s: %w", nm, err))
		}
		fmt.Println(nm, dgst, n)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(*registry, "http://"), "https://")
	for i := 0; *image != "" && i < *images; i++ {
		tagged := fmt.Sprintf("%s:t%d", *image, i)
		ref, err := name.ParseReference(host+"/"+tagged, name.Insecure)
		if err != nil {
			fatal(err)
		}
		dgst, total, err := pushImage(ref, *layers, int64(*layerMiB)<<20)
		if err != nil {
			fatal(fmt.Errorf("image %s: %w", ref, err))
		}
		fmt.Println("image", tagged, dgst, total)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "seed:", err)
	os.Exit(1)
}

// randomStream returns n pseudo-random bytes; the same seed gives the same bytes,
// so a blob can be hashed in one pass and uploaded in a second without storing it.
func randomStream(seed [32]byte, n int64) io.Reader {
	return io.LimitReader(mrand.NewChaCha8(seed), n)
}

func pushBlob(registry, repo string, n int64) (string, error) {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	h := sha256.New()
	if _, err := io.Copy(h, randomStream(seed, n)); err != nil {
		return "", err
	}
	dgst := "sha256:" + hex.EncodeToString(h.Sum(nil))

	resp, err := http.Post(registry+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST upload: %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", err
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), randomStream(seed, n))
	if err != nil {
		return "", err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT upload: %s: %s", resp.Status, body)
	}
	return dgst, nil
}

// pushImage writes an OCI image of uncompressed tar layers, each holding one file of
// random bytes, and returns its manifest digest and the layers' total size.
func pushImage(ref name.Reference, layers int, layerSize int64) (string, int64, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var total int64
	var ls []v1.Layer
	for i := range layers {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdr := &tar.Header{Name: fmt.Sprintf("layer%d/random.bin", i), Mode: 0o644, Size: layerSize}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", 0, err
		}
		if _, err := io.Copy(tw, randomStream(seed, layerSize)); err != nil {
			return "", 0, err
		}
		if err := tw.Close(); err != nil {
			return "", 0, err
		}
		total += int64(buf.Len())
		ls = append(ls, static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer))
	}
	img, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		return "", 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", 0, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", 0, err
	}
	if err := remote.Write(ref, img, remote.WithJobs(4)); err != nil {
		return "", 0, err
	}
	d, err := img.Digest()
	if err != nil {
		return "", 0, err
	}
	return d.String(), total, nil
}
