package mirror

import (
	"context"
	"errors"
	"time"
)

// keepLease renews the lease of a job running on this replica until the
// returned stop is called, and cancels the job (through cancel) when:
//   - the job was cancelled, on any replica: a renewal reports its status;
//   - the lease is lost (it expired and may be another replica's now);
//   - no renewal succeeded for two thirds of the lease (Redis unreachable):
//     the job stops before its lease can expire, so that it never runs on two
//     replicas at once; it runs again once Redis answers.
//
// stop waits for the renewals to end and reports whether the lease was lost
// (the job's outcome is then not this replica's to record).
func (j *Jobs) keepLease(ctx context.Context, id, lease string, cancel context.CancelCauseFunc) (stop func() (lost bool)) {
	every := min(j.lease/3, time.Second)
	quit, done := make(chan struct{}), make(chan struct{})
	var lost bool
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			sent := time.Now()
			st, err := j.store.renewJob(context.WithoutCancel(ctx), id, lease, j.lease)
			switch {
			case errors.Is(err, errLeaseLost):
				lost = true
			case err != nil && time.Since(renewed) >= j.lease*2/3:
				lost = true
				err = errors.Join(errLeaseLost, err)
			case err != nil:
				continue // Redis may answer again before the lease expires
			case st == StatusCancel:
				cancel(context.Canceled)
			}
			if lost {
				cancel(err)
				return
			}
			renewed = sent
		}
	}()
	return func() bool {
		close(quit)
		<-done
		return lost
	}
}
