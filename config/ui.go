package config

// UI configures the web console that `proxy serve` serves under /ui/ on its
// listener.
type UI struct {
	// Disabled turns the console off: /ui/ is then answered like any path
	// that is no registry endpoint (404 with an errcode body), and nothing
	// of the console runs.
	Disabled bool `yaml:"disabled"`
}
