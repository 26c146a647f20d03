package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// CreatePolicy validates p, connects to its remote with its credentials (the
// remote's error is the answer when that fails), stores it, and evaluates it
// now when initial is true; a poll policy created without initial evaluation
// records the remote's tags as they are, so only later changes are copied.
func (e *Engine) CreatePolicy(ctx context.Context, kind Kind, repo string, p Policy, initial bool) (Policy, error) {
	p.LocalRepository = repo
	p.normalize()
	if err := p.validate(); err != nil {
		return Policy{}, badRequest(err.Error())
	}
	if err := e.connect(ctx, p); err != nil {
		return Policy{}, err
	}
	now := e.now().UTC()
	p.ID, p.CreatedAt, p.UpdatedAt = newJobID(now), now, now
	sp := storedPolicy{Kind: kind, Policy: p}
	if kind == Poll && !initial {
		seen, err := e.remoteDigests(ctx, p)
		if err != nil {
			return Policy{}, connectError(err)
		}
		sp.Mirrored = seen
	}
	if _, err := e.store.addPolicy(ctx, sp); err != nil {
		return Policy{}, err
	}
	if initial {
		if err := e.evaluateNow(context.WithoutCancel(ctx), sp); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

// Connect validates p as a policy of repo and connects to its remote with its
// credentials, storing nothing.
func (e *Engine) Connect(ctx context.Context, repo string, p Policy) error {
	p.LocalRepository = repo
	p.normalize()
	if err := p.validate(); err != nil {
		return badRequest(err.Error())
	}
	return e.connect(ctx, p)
}

// evaluateNow submits the jobs that apply a new policy to what exists: a poll
// of its remote, or a push of every tag of its repository.
func (e *Engine) evaluateNow(ctx context.Context, sp storedPolicy) error {
	if sp.Kind == Poll {
		_, err := e.jobs.Submit(ctx, ActionPoll, map[string]string{"policy": sp.Policy.ID}, jobRetries)
		return err
	}
	tags, err := e.copier.Tags(ctx, e.localEndpoint(sp.Policy.LocalRepository))
	if err != nil {
		return fmt.Errorf("list tags of %s: %w", sp.Policy.LocalRepository, err)
	}
	for _, tag := range tags {
		if IsReferrersTag(tag) || !MatchTag(sp.Policy.Rules, tag) {
			continue
		}
		if _, err := e.jobs.Submit(ctx, ActionPush, map[string]string{"policy": sp.Policy.ID, "tag": tag}, jobRetries); err != nil {
			return err
		}
	}
	return nil
}

// UpdatePolicy replaces the settings of policy id with in. A masked or empty
// password with an unchanged username keeps the stored one. The remote is
// connected to only when in is enabled.
func (e *Engine) UpdatePolicy(ctx context.Context, id string, in Policy) (Policy, error) {
	old, err := e.store.getPolicy(ctx, id)
	if err != nil {
		return Policy{}, err
	}
	in.ID, in.LocalRepository, in.CreatedAt, in.LastStatus = id, old.Policy.LocalRepository, old.Policy.CreatedAt, old.Policy.LastStatus
	if (in.Password == masked || in.Password == "") && in.Username == old.Policy.Username {
		in.Password = old.Policy.Password
	}
	in.normalize()
	if err := in.validate(); err != nil {
		return Policy{}, badRequest(err.Error())
	}
	if in.Enabled { // a disabled policy never reaches its remote: disabling works while it is down
		if err := e.connect(ctx, in); err != nil {
			return Policy{}, err
		}
	}
	in.UpdatedAt = e.now().UTC()
	sp, err := e.store.updatePolicy(ctx, id, func(sp *storedPolicy) error {
		if sp.Policy.RemoteHost != in.RemoteHost || sp.Policy.RemoteRepository != in.RemoteRepository {
			sp.Mirrored = nil // another remote: everything is new
		}
		sp.Policy = in
		return nil
	})
	return sp.Policy, err
}

// connectError is the 400 for a remote that refused or could not be reached,
// with its own words.
func connectError(err error) error {
	return &apiError{http.StatusBadRequest, "REMOTE_CONNECT_FAILED", "connecting to the remote registry failed: " + err.Error()}
}

// setStatus records how an evaluation of policy id went, even when the
// evaluation was cancelled.
func (e *Engine) setStatus(ctx context.Context, id string, err error) {
	st := &PolicyStatus{Code: "SUCCESS", LastUpdated: e.now().UTC()}
	if err != nil {
		st.Code, st.Detail = "FAILED", err.Error()
	}
	_, uerr := e.store.updatePolicy(context.WithoutCancel(ctx), id, func(sp *storedPolicy) error { sp.Policy.LastStatus = st; return nil })
	if uerr != nil && !errors.Is(uerr, ErrPolicyNotFound) {
		e.log.WithError(uerr).WithField("policy", id).Error("recording policy status")
	}
}
