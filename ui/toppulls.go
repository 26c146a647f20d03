package ui

import "time"

// RepoPulls is a repository's pulls in a time window, as the server counts
// them (a manifest GET answered 200, as Docker Hub counts pulls).
type RepoPulls struct {
	Name  string
	Pulls int64 // counted; a lower bound when Over > 0
	// Over is how many more pulls it may have had while the bounded counter
	// was not tracking it; 0: Pulls is exact.
	Over int64
}

// TopPullsFunc returns the n most pulled repositories of the last window,
// most pulled first.
type TopPullsFunc func(window time.Duration, n int) []RepoPulls

// topWindow is one time window of the most pulled repositories.
type topWindow struct {
	Name  string // "last hour"
	Repos []RepoPulls
}

// topCount is how many repositories each window lists.
const topCount = 10

// topWindows are the most pulled repositories of the last hour and day.
func topWindows(top TopPullsFunc) []topWindow {
	return []topWindow{
		{"last hour", top(time.Hour, topCount)},
		{"last day", top(24*time.Hour, topCount)},
	}
}
