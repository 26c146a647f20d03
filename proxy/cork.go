package proxy

import (
	"context"
	"net"
)

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets a handler reach the
// client's TCP connection, which writeBlobBody corks while it sends a stored
// blob with sendfile.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*net.TCPConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// corked holds back partial TCP segments on the request's connection until
// the returned function runs, as nginx's tcp_nopush does around sendfile.
// Without it, each piece sendfile hands the socket ends in a short segment
// of its own: on loopback that is one 53-byte packet per 64 KiB, which
// doubles the packets the kernel handles. It is a no-op where the
// connection is unknown (TLS, tests' servers) or the system has no cork.
func corked(ctx context.Context) (uncork func()) {
	tc, _ := ctx.Value(connKey{}).(*net.TCPConn)
	if tc == nil || setCork(tc, true) != nil {
		return func() {}
	}
	return func() { _ = setCork(tc, false) } // sends what it held
}
