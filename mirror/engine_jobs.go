package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// remoteEndpoint is the remote side of a policy, with its credentials.
func (e *Engine) remoteEndpoint(p Policy) (Endpoint, error) {
	u, err := url.Parse(p.RemoteHost)
	if err != nil {
		return Endpoint{}, fmt.Errorf("remoteHost: %w", err)
	}
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(u.Host+"/"+p.RemoteRepository, nopts...)
	if err != nil {
		return Endpoint{}, fmt.Errorf("remote repository: %w", err)
	}
	ep := Endpoint{Repo: repo, Insecure: u.Scheme == "http", SkipTLSVerify: p.SkipTLSVerification}
	if p.Username != "" {
		ep.Auth = &authn.Basic{Username: p.Username, Password: p.Password}
	}
	if p.RemoteCA != "" {
		ep.CA = []byte(p.RemoteCA)
	}
	return ep, nil
}

// localEndpoint is a hosted repository of this server, reached in process.
func (e *Engine) localEndpoint(repo string) Endpoint {
	r, _ := name.NewRepository(e.local.Host+"/"+repo, name.Insecure) // hosted names are valid
	return Endpoint{Repo: r, Insecure: true, Transport: e.local.Transport}
}

// connect checks that a policy's remote answers with its credentials.
func (e *Engine) connect(ctx context.Context, p Policy) error {
	ep, err := e.remoteEndpoint(p)
	if err != nil {
		return badRequest(err.Error())
	}
	if err := e.copier.Ping(ctx, ep); err != nil {
		return connectError(err)
	}
	return nil
}

// remoteDigests maps every tag of a poll policy's remote that its tag rules
// select to the digest it has now.
func (e *Engine) remoteDigests(ctx context.Context, p Policy) (map[string]string, error) {
	ep, err := e.remoteEndpoint(p)
	if err != nil {
		return nil, err
	}
	tags, err := e.copier.Tags(ctx, ep)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, tag := range tags {
		if IsReferrersTag(tag) || !MatchTag(p.Rules, tag) {
			continue
		}
		d, err := e.copier.Head(ctx, ep, tag)
		if err != nil {
			return nil, err
		}
		out[tag] = d.Digest.String()
	}
	return out, nil
}

// runPoll evaluates the poll policy the job names, or every enabled one.
func (e *Engine) runPoll(ctx context.Context, job Job, logf func(string, ...any)) error {
	var sps []storedPolicy
	if id := job.Parameters["policy"]; id != "" {
		sp, err := e.store.getPolicy(ctx, id)
		if errors.Is(err, ErrPolicyNotFound) {
			return fmt.Errorf("policy %s: %w", id, ErrPermanent)
		}
		if err != nil {
			return fmt.Errorf("policy %s: %w", id, err)
		}
		sps = append(sps, sp)
	} else {
		all, err := e.store.listPolicies(ctx, Poll, "")
		if err != nil {
			return fmt.Errorf("list poll policies: %w", err)
		}
		sps = all
	}
	var errs []error
	for _, sp := range sps {
		if !sp.Policy.Enabled {
			continue
		}
		err := e.pollOne(ctx, sp, logf)
		e.setStatus(ctx, sp.Policy.ID, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("policy %s (%s <- %s/%s): %w", sp.Policy.ID, sp.Policy.LocalRepository,
				sp.Policy.RemoteHost, sp.Policy.RemoteRepository, err))
		}
	}
	return errors.Join(errs...)
}

// pollOne copies the tags of one policy's remote that are new or moved since
// it last looked: one HEAD per unchanged tag, a copy per changed one. Each
// copied tag is recorded at once, so an interrupted poll resumes where it was.
func (e *Engine) pollOne(ctx context.Context, sp storedPolicy, logf func(string, ...any)) error {
	p := sp.Policy
	remote, err := e.remoteEndpoint(p)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrPermanent)
	}
	tags, err := e.copier.Tags(ctx, remote)
	if err != nil {
		return fmt.Errorf("list remote tags: %w", err)
	}
	sort.Strings(tags)
	logf("policy %s: %s/%s has %d tags", p.ID, p.RemoteHost, p.RemoteRepository, len(tags))
	var failed []error
	for _, tag := range tags {
		if IsReferrersTag(tag) || !MatchTag(p.Rules, tag) {
			continue // sha256-<hex> tags are referrers; they travel with their subject
		}
		desc, err := e.copier.Head(ctx, remote, tag)
		if err != nil {
			failed = append(failed, fmt.Errorf("HEAD %s: %w", tag, err))
			continue
		}
		if sp.Mirrored[tag] == desc.Digest.String() {
			logf("unchanged %s (%s)", tag, desc.Digest)
			continue
		}
		if err := e.copyTag(ctx, p, remote, tag, desc, e.localEndpoint(p.LocalRepository), logf); err != nil {
			failed = append(failed, err)
			continue
		}
		sp.Mirrored = e.recordMirrored(ctx, p.ID, tag, desc.Digest.String())
	}
	return errors.Join(failed...)
}

// recordMirrored stores that tag was mirrored at digest, and returns the
// policy's updated record of mirrored tags. A tag copied is recorded even if
// the job is being cancelled.
func (e *Engine) recordMirrored(ctx context.Context, id, tag, digest string) map[string]string {
	sp, err := e.store.updatePolicy(context.WithoutCancel(ctx), id, func(sp *storedPolicy) error {
		if sp.Mirrored == nil {
			sp.Mirrored = map[string]string{}
		}
		sp.Mirrored[tag] = digest
		return nil
	})
	if err != nil {
		e.log.WithError(err).WithField("policy", id).Warn("recording a mirrored tag")
	}
	return sp.Mirrored
}

// runPush pushes the tag a job names to its policy's remote.
func (e *Engine) runPush(ctx context.Context, job Job, logf func(string, ...any)) error {
	id, tag := job.Parameters["policy"], job.Parameters["tag"]
	sp, err := e.store.getPolicy(ctx, id)
	if errors.Is(err, ErrPolicyNotFound) {
		return fmt.Errorf("policy %s: %w", id, ErrPermanent)
	}
	if err != nil {
		return fmt.Errorf("policy %s: %w", id, err)
	}
	p := sp.Policy
	if !p.Enabled {
		logf("policy %s is disabled: %s not pushed", id, tag)
		return nil
	}
	remote, err := e.remoteEndpoint(p)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrPermanent)
	}
	local := e.localEndpoint(p.LocalRepository)
	ref := tag
	if d := job.Parameters["digest"]; d != "" {
		ref = d // what was pushed, even if the tag moved since
	}
	desc, err := e.copier.Head(ctx, local, ref)
	if err != nil {
		return fmt.Errorf("HEAD %s:%s: %w", p.LocalRepository, ref, err)
	}
	err = e.copyTag(ctx, p, local, tag, desc, remote, logf)
	e.setStatus(ctx, id, err)
	return err
}

// copyTag copies src's tag (at desc) to dst under the policy's tag template,
// when the policy's license rules hold, with the platforms its platform rules
// select.
func (e *Engine) copyTag(ctx context.Context, p Policy, src Endpoint, tag string, desc v1.Descriptor, dst Endpoint, logf func(string, ...any)) error {
	if HasLicenseRules(p.Rules) {
		expr, err := e.copier.Licenses(ctx, src, desc.Digest.String())
		if err != nil {
			return fmt.Errorf("read licenses of %s: %w", tag, err)
		}
		if !MatchLicense(p.Rules, expr) {
			logf("skipped %s: license %q does not match the policy's rules", tag, expr)
			return nil
		}
	}
	var platforms []v1.Platform
	if desc.MediaType.IsIndex() {
		all, err := e.copier.Platforms(ctx, src, desc.Digest.String())
		if err != nil {
			return fmt.Errorf("read platforms of %s: %w", tag, err)
		}
		platforms = PlatformFilter(p.Rules, all)
		if platforms != nil && len(platforms) == 0 {
			logf("skipped %s: none of its platforms matches the policy's rules", tag)
			return nil
		}
	}
	dstTag, err := ExpandTag(p.TagTemplate, tag, desc.Digest.Hex, e.now())
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrPermanent)
	}
	res, err := e.copier.Copy(ctx, src, desc.Digest.String(), dst, dstTag, platforms)
	if err != nil {
		return fmt.Errorf("copy %s to %s:%s: %w", tag, dst.Repo, dstTag, err)
	}
	logf("copied %s:%s -> %s:%s (%s; %d blobs copied, %d skipped, %d mounted, %d bytes, %d referrers)",
		src.Repo, tag, dst.Repo, dstTag, res.Digest, res.Blobs, res.Skipped, res.Mounted, res.Bytes, res.Referrers)
	return nil
}
