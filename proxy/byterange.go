package proxy

import (
	"errors"
	"strconv"
	"strings"
)

// errRangeInvalid is a Range header that is malformed or lies outside the blob:
// 416 with RANGE_INVALID.
var errRangeInvalid = errors.New("invalid range")

// byteRange is one satisfiable range of a blob: bytes [start, start+length).
type byteRange struct {
	start, length int64
}

// parseRange parses a Range header against a blob of size bytes (RFC 9110 14.1.2).
// It returns ok=false when the whole blob should be served: no header, a unit other
// than bytes, or several ranges (registry clients ask for one; serving the whole
// blob is allowed). An unsatisfiable or malformed bytes range is errRangeInvalid.
func parseRange(header string, size int64) (r byteRange, ok bool, err error) {
	if header == "" {
		return byteRange{}, false, nil
	}
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found {
		return byteRange{}, false, nil
	}
	if strings.Contains(spec, ",") {
		return byteRange{}, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return byteRange{}, false, errRangeInvalid
	}
	if first == "" { // suffix: the last N bytes
		n, err := parseOffset(last)
		if err != nil || n == 0 || size == 0 {
			return byteRange{}, false, errRangeInvalid
		}
		n = min(n, size)
		return byteRange{start: size - n, length: n}, true, nil
	}
	start, err := parseOffset(first)
	if err != nil || start >= size {
		return byteRange{}, false, errRangeInvalid
	}
	end := size - 1
	if last != "" {
		e, err := parseOffset(last)
		if err != nil || e < start {
			return byteRange{}, false, errRangeInvalid
		}
		end = min(e, size-1)
	}
	return byteRange{start: start, length: end - start + 1}, true, nil
}

// parseOffset accepts only plain decimal digits (no sign, no spaces).
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errRangeInvalid
	}
	return strconv.ParseInt(s, 10, 64)
}

// contentRange formats the Content-Range header of r in a blob of size bytes.
func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" +
		strconv.FormatInt(r.start+r.length-1, 10) + "/" + strconv.FormatInt(size, 10)
}
