package config

import "time"

// Mirror configures the mirroring engine (poll and push mirroring policies of
// hosted repositories, managed through /api/v0).
type Mirror struct {
	// PollInterval is how often poll policies are evaluated (default 30m).
	PollInterval time.Duration `yaml:"pollinterval"`
	// Workers is how many mirroring jobs run at once (default 2).
	Workers int `yaml:"workers"`
}

func (m *Mirror) validate() error {
	if m.PollInterval < 0 || (m.PollInterval > 0 && m.PollInterval < time.Second) {
		return newError("mirror.pollinterval", m.PollInterval.String(), "must be at least 1s")
	}
	if m.Workers < 0 || m.Workers > 64 {
		return newError("mirror.workers", "", "must be from 0 (default 2) to 64")
	}
	return nil
}
