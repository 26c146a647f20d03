// Package access holds the benchmark of the access-recording path: warm pulls
// through the HTTP front end with the scheduler's index on and off (issue 4).
// It has no code of its own; run it with bench/access.sh (see bench/README.md).
package access
