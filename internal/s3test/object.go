package s3test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/service/s3"
)

// Digest reads the object at key through the S3 API and returns its size and
// "sha256:<hex>" digest without holding it in memory: to check what a cache
// stored under a blob's key, however large.
func (s *Server) Digest(key string) (int64, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.client.GetObjectWithContext(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(strings.TrimPrefix(key, "/")),
	})
	if err != nil {
		return 0, "", fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		return n, "", fmt.Errorf("read %s after %d bytes: %w", key, n, err)
	}
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
