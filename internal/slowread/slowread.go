//go:build linux

// Package slowread is an HTTP client for tests of clients that read slowly:
// its sockets receive little ahead of the reader, so a server's write blocks
// until the client reads, as with a slow client on a real network.
package slowread

import (
	"errors"
	"net"
	"net/http"
	"syscall"
)

// Window is how much a Client's socket receives ahead of its reader. Linux
// otherwise autotunes it up to tcp_rmem's maximum (often 6 to 32 MiB), which
// would take whole test blobs at once.
const Window = 64 << 10

// Client returns a client whose connections receive at most Window bytes
// ahead of the reader.
func Client() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, Window)
		})
		return errors.Join(cerr, err)
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}
