//go:build !linux

package access

// threadCPU is not measured here; the CPU metrics read 0.
func threadCPU() int64 { return 0 }
