//go:build !linux

package proxy

import (
	"errors"
	"net"
)

func setCork(*net.TCPConn, bool) error { return errors.ErrUnsupported }
