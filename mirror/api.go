package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cluster"
)

// maxAPIBody bounds a request body of the API.
const maxAPIBody = 1 << 20

// API serves DTR's mirroring API under /api/v0: poll and push mirroring
// policies of hosted repositories, jobs and their logs, and the poll schedule.
// Every request needs an admin (auth.Admin).
type API struct {
	engine *Engine
	authz  *auth.Authorizer
	mux    *http.ServeMux
}

// NewAPI returns the /api/v0 handler over e, authorizing with a.
func NewAPI(e *Engine, a *auth.Authorizer) *API {
	api := &API{engine: e, authz: a, mux: http.NewServeMux()}
	for _, k := range []Kind{Poll, Push} {
		base := "/api/v0/repositories/{namespace}/{reponame}/" + string(k) + "MirroringPolicies"
		api.handle("POST "+base, api.createPolicy(k))
		api.handle("GET "+base, api.listPolicies(k))
		api.handle("GET "+base+"/{id}", api.getPolicy(k))
		api.handle("PUT "+base+"/{id}", api.updatePolicy(k))
		api.handle("DELETE "+base+"/{id}", api.deletePolicy(k))
		api.handle("POST "+base+"/connect", api.connectPolicy(k))
	}
	api.handle("POST /api/v0/jobs", api.submitJob)
	api.handle("GET /api/v0/jobs", api.listJobs)
	api.handle("GET /api/v0/jobs/{id}", api.getJob)
	api.handle("GET /api/v0/jobs/{id}/logs", api.jobLogs)
	api.handle("DELETE /api/v0/jobs/{id}", api.cancelJob)
	api.handle("GET /api/v0/crons", api.crons)
	api.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, r, &apiError{http.StatusNotFound, "NOT_FOUND", "no such API endpoint: " + r.Method + " " + r.URL.Path})
	})
	return api
}

func (api *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { api.mux.ServeHTTP(w, r) }

// handle registers an endpoint behind the admin check; the handler returns
// an error that is written as an errors body.
func (api *API) handle(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
	api.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		user, ok := trustedAdmin(r.Context())
		if !ok {
			var err error
			user, err = api.authz.Authorize(r, auth.Access{Action: auth.Admin})
			if err != nil {
				auth.WriteError(w, r, err)
				return
			}
		}
		r = r.WithContext(auth.WithUser(r.Context(), user))
		if err := h(w, r); err != nil {
			writeAPIError(w, r, err)
		}
	})
}

// adminKey marks a context whose request an in-process caller has already
// authorized as an admin.
type adminKey struct{}

// WithAdmin returns ctx marked as a request of user, whom the caller has
// already authorized as an admin (auth.Admin): the API then skips its own
// check of the Authorization header. It is for in-process clients of the API
// such as the web console, which authenticates users with a session of its
// own; a network request cannot carry the mark.
func WithAdmin(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, adminKey{}, user)
}

func trustedAdmin(ctx context.Context) (string, bool) {
	user, ok := ctx.Value(adminKey{}).(string)
	return user, ok
}

// apiError is an API failure with its status and DTR-style code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// errUnavailable answers while the cluster's Redis, which holds the
// policies and jobs, cannot be reached: mirroring is paused, pulls are not.
var errUnavailable = &apiError{http.StatusServiceUnavailable, "UNAVAILABLE",
	"cluster coordination is unavailable: mirroring policies and jobs are kept in redis, which this replica cannot reach; " +
		"mirroring is paused until it answers again (pulls are not affected)"}

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, "INVALID_INPUT", msg} }

// writeAPIError writes {"errors":[{"code","message"}]}, the shape of DTR's and
// the registry's errors.
func writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrPolicyNotFound):
		ae = &apiError{http.StatusNotFound, "NO_SUCH_MIRRORING_POLICY", err.Error()}
	case errors.Is(err, ErrJobNotFound):
		ae = &apiError{http.StatusNotFound, "NO_SUCH_JOB", err.Error()}
	case errors.Is(err, cluster.ErrUnavailable):
		ae = errUnavailable
		w.Header().Set("Retry-After", "5")
	default:
		logrus.WithError(err).WithField("path", r.URL.Path).Error("mirroring API")
		ae = &apiError{http.StatusInternalServerError, "INTERNAL_ERROR", "internal error (see the server log)"}
	}
	writeJSON(w, ae.status, map[string]any{"errors": []map[string]string{{"code": ae.code, "message": ae.msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, "INVALID_JSON", "request body: " + err.Error()}
	}
	return nil
}

// repoOf is the hosted repository a policy URL names.
func (api *API) repoOf(r *http.Request) (string, error) {
	repo := r.PathValue("namespace") + "/" + r.PathValue("reponame")
	if !api.engine.isHosted(repo) {
		return "", &apiError{http.StatusNotFound, "NO_SUCH_REPOSITORY",
			repo + " is not in a hosted namespace (hosted.namespaces); mirrors land in and leave from hosted repositories"}
	}
	return repo, nil
}

func (api *API) createPolicy(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		repo, in, err := api.policyRequest(r)
		if err != nil {
			return err
		}
		initial := strings.EqualFold(r.URL.Query().Get("initialEvaluation"), "true")
		p, err := api.engine.CreatePolicy(r.Context(), k, repo, in, initial)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, p.Public())
	}
}

// policyRequest is the hosted repository a policy URL names and the policy
// its body holds.
func (api *API) policyRequest(r *http.Request) (string, Policy, error) {
	repo, err := api.repoOf(r)
	if err != nil {
		return "", Policy{}, err
	}
	in, err := decodePolicy(r)
	return repo, in, err
}

// policyInput is a policy as a client sends it; enabled defaults to true.
type policyInput struct {
	Policy
	Enabled *bool `json:"enabled"`
}

func decodePolicy(r *http.Request) (Policy, error) {
	var in policyInput
	if err := decode(r, &in); err != nil {
		return Policy{}, err
	}
	p := in.Policy
	p.Enabled = in.Enabled == nil || *in.Enabled
	return p, nil
}

// connectPolicy checks a policy as create would (its settings, then a
// connection to its remote with its credentials) and stores nothing: the
// console's Connect button. The answer is {"connected":true} or the error
// create would give.
func (api *API) connectPolicy(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		repo, in, err := api.policyRequest(r)
		if err != nil {
			return err
		}
		if err := api.engine.Connect(r.Context(), repo, in); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]bool{"connected": true})
	}
}

func (api *API) listPolicies(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		repo, err := api.repoOf(r)
		if err != nil {
			return err
		}
		sps, err := api.engine.store.listPolicies(r.Context(), k, repo)
		if err != nil {
			return err
		}
		out := []Policy{}
		for _, sp := range sps {
			out = append(out, sp.Policy.Public())
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

// policyAt loads the policy the URL names, checking kind and repository.
func (api *API) policyAt(r *http.Request, k Kind) (storedPolicy, error) {
	repo, err := api.repoOf(r)
	if err != nil {
		return storedPolicy{}, err
	}
	sp, err := api.engine.store.getPolicy(r.Context(), r.PathValue("id"))
	if err == nil && (sp.Kind != k || sp.Policy.LocalRepository != repo) {
		err = ErrPolicyNotFound
	}
	return sp, err
}

func (api *API) getPolicy(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sp, err := api.policyAt(r, k)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, sp.Policy.Public())
	}
}

func (api *API) updatePolicy(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sp, err := api.policyAt(r, k)
		if err != nil {
			return err
		}
		in, err := decodePolicy(r)
		if err != nil {
			return err
		}
		p, err := api.engine.UpdatePolicy(r.Context(), sp.Policy.ID, in)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, p.Public())
	}
}

func (api *API) deletePolicy(k Kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sp, err := api.policyAt(r, k)
		if err != nil {
			return err
		}
		if err := api.engine.store.deletePolicy(r.Context(), sp.Policy.ID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (api *API) submitJob(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Action string `json:"action"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Action != ActionPoll {
		return badRequest("action " + strconv.Quote(in.Action) + " cannot be started by hand; use " + ActionPoll)
	}
	job, err := api.engine.jobs.Submit(r.Context(), ActionPoll, map[string]string{}, 0)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, job)
}

func (api *API) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	start, err1 := strconv.Atoi(defaultStr(q.Get("start"), "0"))
	limit, err2 := strconv.Atoi(defaultStr(q.Get("limit"), "25"))
	if err1 != nil || err2 != nil || start < 0 || limit < 1 || limit > 1000 {
		return badRequest("start must be >= 0 and limit from 1 to 1000")
	}
	status := Status(q.Get("status"))
	switch status {
	case "", StatusWaiting, StatusRunning, StatusDone, StatusError, StatusCancel:
	default:
		return badRequest("status must be one of waiting, running, done, error, cancel")
	}
	jobs, err := api.engine.jobs.List(r.Context(), q.Get("action"), status, start, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

func defaultStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (api *API) getJob(w http.ResponseWriter, r *http.Request) error {
	job, err := api.engine.jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

func (api *API) jobLogs(w http.ResponseWriter, r *http.Request) error {
	logs, err := api.engine.jobs.Logs(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, logs)
}

func (api *API) cancelJob(w http.ResponseWriter, r *http.Request) error {
	job, err := api.engine.jobs.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

func (api *API) crons(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.engine.Crons())
}
