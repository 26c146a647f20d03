package ui

import (
	"net/http"
	"net/url"

	"github.com/ocimirror/proxy/mirror"
)

// jobActions and jobStatuses are the Jobs page's filters.
var (
	jobActions  = []string{mirror.ActionPoll, mirror.ActionPush}
	jobStatuses = []mirror.Status{mirror.StatusWaiting, mirror.StatusRunning, mirror.StatusDone, mirror.StatusError, mirror.StatusCancel}
)

// jobsData is the Jobs page's model.
type jobsData struct {
	page
	Action, Status string
	Actions        []string
	Statuses       []mirror.Status
	Jobs           []mirror.Job
	Active         bool // a job waits or runs: the script keeps refreshing
}

// loadJobs reads the latest 100 jobs with the request's filters, which must
// be among the known values (anything else is no filter).
func (c *Console) loadJobs(r *http.Request, s session) (jobsData, error) {
	q := r.URL.Query()
	d := jobsData{page: c.base(s, "Jobs", "jobs"), Actions: jobActions, Statuses: jobStatuses}
	for _, a := range jobActions {
		if q.Get("action") == a {
			d.Action = a
		}
	}
	for _, st := range jobStatuses {
		if q.Get("status") == string(st) {
			d.Status = string(st)
		}
	}
	v := url.Values{"limit": {"100"}}
	if d.Action != "" {
		v.Set("action", d.Action)
	}
	if d.Status != "" {
		v.Set("status", d.Status)
	}
	var out struct {
		Jobs []mirror.Job `json:"jobs"`
	}
	if err := c.callAPI(r.Context(), s, http.MethodGet, "/jobs?"+v.Encode(), nil, &out); err != nil {
		return d, err
	}
	d.Jobs = out.Jobs
	for _, j := range d.Jobs {
		if j.Status == mirror.StatusWaiting || j.Status == mirror.StatusRunning {
			d.Active = true
		}
	}
	d.Flash = flash(q.Get("done"))
	return d, nil
}

// jobs is the Jobs page: the job list with filters, Run now, Cancel.
func (c *Console) jobs(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.loadJobs(r, s)
	if err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	c.render(w, http.StatusOK, "jobs", d)
}

// jobsTable is the job table alone, which the page's script fetches every
// two seconds while jobs wait or run, and every ten seconds otherwise (so a
// job started later shows), to replace the table.
func (c *Console) jobsTable(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.loadJobs(r, s)
	if err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	c.renderTemplate(w, http.StatusOK, "jobs", "jobtable", d)
}

// jobData is a job's page: the job and its log.
type jobData struct {
	page
	Job    mirror.Job
	Log    []mirror.LogLine
	Active bool
}

func (c *Console) loadJob(r *http.Request, s session) (jobData, error) {
	id := r.URL.Query().Get("id")
	d := jobData{page: c.base(s, "Job "+id, "jobs")}
	if err := c.callAPI(r.Context(), s, http.MethodGet, "/jobs/"+url.PathEscape(id), nil, &d.Job); err != nil {
		return d, err
	}
	if err := c.callAPI(r.Context(), s, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/logs", nil, &d.Log); err != nil {
		return d, err
	}
	d.Active = d.Job.Status == mirror.StatusWaiting || d.Job.Status == mirror.StatusRunning
	return d, nil
}

// job is one job's page with its log.
func (c *Console) job(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.loadJob(r, s)
	if err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	c.render(w, http.StatusOK, "job", d)
}

// jobLog is a job's status and log alone, for the page's script.
func (c *Console) jobLog(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.loadJob(r, s)
	if err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	c.renderTemplate(w, http.StatusOK, "job", "joblog", d)
}

// jobRun starts a poll_mirror job (the only action that can be started by
// hand).
func (c *Console) jobRun(w http.ResponseWriter, r *http.Request, s session) {
	if err := c.callAPI(r.Context(), s, http.MethodPost, "/jobs", map[string]string{"action": mirror.ActionPoll}, nil); err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"jobs?done=run", http.StatusSeeOther)
}

// jobCancel asks a waiting or running job to stop.
func (c *Console) jobCancel(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PostFormValue("id")
	if err := c.callAPI(r.Context(), s, http.MethodDelete, "/jobs/"+url.PathEscape(id), nil, nil); err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"jobs?done=canceled", http.StatusSeeOther)
}
