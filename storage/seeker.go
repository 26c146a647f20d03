package storage

import (
	"context"
	"errors"
	"io"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// driverSeeker adapts a driver whose readers cannot seek (object stores): a Seek
// reopens the reader at the new offset on the next Read.
type driverSeeker struct {
	ctx    context.Context
	d      driver.StorageDriver
	path   string
	rc     io.ReadCloser
	off    int64
	size   int64
	reopen bool
}

func (s *driverSeeker) Read(p []byte) (int, error) {
	if s.reopen {
		if s.rc != nil {
			_ = s.rc.Close()
		}
		rc, err := s.d.Reader(s.ctx, s.path, s.off)
		if err != nil {
			s.rc = nil
			return 0, err
		}
		s.rc, s.reopen = rc, false
	}
	if s.rc == nil {
		return 0, errors.New("storage: reader closed")
	}
	n, err := s.rc.Read(p)
	s.off += int64(n)
	return n, err
}

func (s *driverSeeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.off + offset
	case io.SeekEnd:
		abs = s.size + offset
	default:
		return 0, errors.New("storage: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("storage: negative position")
	}
	if abs != s.off {
		s.off, s.reopen = abs, true
	}
	return abs, nil
}

func (s *driverSeeker) Close() error {
	if s.rc == nil {
		return nil
	}
	err := s.rc.Close()
	s.rc = nil
	return err
}
