package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration decodes a time.Duration from YAML: a Go duration string ("168h",
// "10s", "1m30s") or an integer number of nanoseconds, as distribution does.
// Config fields are plain time.Duration; Parse decodes them through Duration.
type Duration time.Duration

// msgDuration is the Msg of an Error about a bad duration.
const msgDuration = `invalid duration (use e.g. "30s", "1m30s" or "168h")`

// UnmarshalYAML implements yaml.Unmarshaler. Its errors are *Error holding
// the bad value; Parse fills in the key.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Msg: "expected a duration"}
	}
	if n.ShortTag() == "!!int" {
		var ns int64
		if err := n.Decode(&ns); err != nil {
			return &Error{Value: n.Value, Msg: msgDuration}
		}
		*d = Duration(ns)
		return nil
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return &Error{Value: n.Value, Msg: msgDuration}
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes. In YAML it is an integer number of bytes or a
// number with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB,
// TiB (powers of 1024), case-insensitive: "4MiB", "512KiB", "1GB", "1048576".
type ByteSize int64

// msgByteSize is the Msg of an Error about a bad byte size.
const msgByteSize = `invalid byte size (use e.g. "4MiB", "512KiB", "1GB" or a number of bytes)`

var (
	byteSizeRE    = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]*)$`)
	byteSizeUnits = map[string]int64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}
)

// ParseByteSize parses a byte size such as "4MiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	m := byteSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, &Error{Value: s, Msg: msgByteSize}
	}
	unit, ok := byteSizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, &Error{Value: s, Msg: msgByteSize}
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, &Error{Value: s, Msg: "byte size too large"}
	}
	return ByteSize(n * unit), nil
}

// UnmarshalYAML implements yaml.Unmarshaler. Its errors are *Error holding
// the bad value; Parse fills in the key.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Msg: "expected a byte size"}
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats b with the largest binary unit dividing it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		size ByteSize
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && b%u.size == 0 {
			return fmt.Sprintf("%d%s", b/u.size, u.name)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
