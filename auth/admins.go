package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// CheckAdmin tells whether user, who logged in as an admin earlier (a web
// console session), still is one: listed in auth.admins when that is set,
// and with htpasswd still a user of its file, which is re-read when it
// changes (the cost is one stat per call). A refusal is an *Error (403
// DENIED) saying why; any other error is a server fault, such as an
// unreadable file. With token auth only the admin list is checked: this
// server has no list of the token service's users.
func (a *Authorizer) CheckAdmin(user string) error {
	if a.ac == nil {
		return refuseNoAuth("the console")
	}
	if user == "" {
		return refuse(http.StatusForbidden, nil, errcode.ErrorCodeDenied, nil, "the console is for admins, and anonymous is not one")
	}
	if len(a.admins) > 0 && !a.admins[user] {
		return refuse(http.StatusForbidden, nil, errcode.ErrorCodeDenied, nil, "%q is no longer in auth.admins", user)
	}
	if a.users == nil {
		return nil
	}
	ok, err := a.users.has(user)
	if err != nil {
		return fmt.Errorf("auth: checking that %q is still a user: %w", user, err)
	}
	if !ok {
		return refuse(http.StatusForbidden, nil, errcode.ErrorCodeDenied, nil, "%q is no longer a user of auth.htpasswd", user)
	}
	return nil
}

// racyWindow is how long after its modification time a file is read again
// on every check: a second write within the file system's timestamp
// granularity (a few ms on ext4) leaves the time unchanged.
const racyWindow = 2 * time.Second

// htpasswdUsers is the set of user names in an htpasswd file, read again
// whenever the file's modification time or size changes (as distribution's
// htpasswd controller reads it for each login), or was modified just now.
type htpasswdUsers struct {
	path string

	mu    sync.Mutex
	mod   time.Time
	size  int64
	names map[string]bool
}

// has reports whether name has an entry in the file as it is now.
func (u *htpasswdUsers) has(name string) (bool, error) {
	fi, err := os.Stat(u.path)
	if err != nil {
		return false, fmt.Errorf("auth.htpasswd.path: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.names == nil || !fi.ModTime().Equal(u.mod) || fi.Size() != u.size || time.Since(fi.ModTime()) < racyWindow {
		data, err := os.ReadFile(u.path)
		if err != nil {
			return false, fmt.Errorf("auth.htpasswd.path: %w", err)
		}
		names, err := htpasswdNames(data)
		if err != nil {
			return false, fmt.Errorf("auth.htpasswd.path %s: %w", u.path, err)
		}
		u.names, u.mod, u.size = names, fi.ModTime(), fi.Size()
	}
	return u.names[name], nil
}

// htpasswdNames reads the user names of an htpasswd file by distribution's
// rules: "name:hash" lines, blank lines and lines starting with # skipped. A
// line without a colon is an error, as distribution refuses every login then.
func htpasswdNames(data []byte) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("invalid entry at line %d", n)
		}
		names[name] = true
	}
	return names, sc.Err()
}

// TokenAuth reports whether client auth is auth.token: users hold tokens of
// an external service, and this server has no password it could check (the
// web console's login needs auth.htpasswd).
func (a *Authorizer) TokenAuth() bool { return a.bearer }
