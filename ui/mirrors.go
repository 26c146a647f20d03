package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ocimirror/proxy/mirror"
)

// ruleRows is how many rule rows the mirror form has (all rules must hold).
const ruleRows = 3

// policyPath is the API path of a repository's policies of kind k.
func policyPath(repo string, k mirror.Kind) string {
	ns, name, _ := strings.Cut(repo, "/")
	return "/repositories/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/" + string(k) + "MirroringPolicies"
}

// parseKind reads the direction of a form or query: "push" or "poll".
func parseKind(s string) mirror.Kind {
	if s == string(mirror.Push) {
		return mirror.Push
	}
	return mirror.Poll
}

// mirrorRow is a policy in the Mirrors tab.
type mirrorRow struct {
	Kind mirror.Kind
	mirror.Policy
}

// mirrors is a hosted repository's Mirrors tab: its pull and push policies.
func (c *Console) mirrors(w http.ResponseWriter, r *http.Request, s session) {
	repo := r.URL.Query().Get("repo")
	if !mirrorable(repo) {
		c.errorPage(w, r, http.StatusNotFound, "Mirrors belong to a hosted repository named namespace/repository.")
		return
	}
	var rows []mirrorRow
	for _, k := range []mirror.Kind{mirror.Poll, mirror.Push} {
		var ps []mirror.Policy
		if err := c.callAPI(r.Context(), s, http.MethodGet, policyPath(repo, k), nil, &ps); err != nil {
			c.apiErrorPage(w, r, err)
			return
		}
		for _, p := range ps {
			rows = append(rows, mirrorRow{k, p})
		}
	}
	p := c.base(s, "Mirrors of "+repo, "repositories")
	p.Flash = flash(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, "mirrors", struct {
		page
		Repo     string
		Policies []mirrorRow
	}{p, repo, rows})
}

// flash is the message after a redirect, from a fixed list (never echoed
// from the query).
func flash(key string) string {
	return map[string]string{
		"saved":    "Mirror saved.",
		"applied":  "Mirror saved; jobs are copying the existing tags (see Jobs).",
		"deleted":  "Mirror deleted.",
		"enabled":  "Mirror enabled.",
		"disabled": "Mirror disabled.",
		"run":      "A poll_mirror job was started.",
		"canceled": "The job was asked to stop.",
	}[key]
}

// apiErrorPage shows an API error as a page.
func (c *Console) apiErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		c.errorPage(w, r, ae.Status, ae.Message)
		return
	}
	c.log.WithError(err).Error("console: mirroring API")
	c.errorPage(w, r, http.StatusInternalServerError, "The mirroring API failed; see the server log.")
}

// mirrorForm is the form's model. Password is never in it: a password is not
// sent back to the browser.
type mirrorForm struct {
	page
	Repo      string
	ID        string // empty for a new mirror
	Kind      mirror.Kind
	DockerHub bool
	Policy    mirror.Policy
	HasSecret bool // the stored policy has a password (edit)
	Rules     []mirror.Rule
	Errors    map[string]string // by field: remoteHost, remoteRepository, credentials, remoteCA, rules, tagTemplate, form
	Connected string
}

// mirrorForm shows the New mirror form, or the Edit form of policy id.
func (c *Console) mirrorForm(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	repo := q.Get("repo")
	if !mirrorable(repo) {
		c.errorPage(w, r, http.StatusNotFound, "Mirrors belong to a hosted repository named namespace/repository.")
		return
	}
	f := mirrorForm{page: c.base(s, "New mirror for "+repo, "repositories"), Repo: repo, Kind: parseKind(q.Get("kind")),
		Policy: mirror.Policy{TagTemplate: "%n", Enabled: true}}
	if id := q.Get("id"); id != "" {
		var p mirror.Policy
		if err := c.callAPI(r.Context(), s, http.MethodGet, policyPath(repo, f.Kind)+"/"+url.PathEscape(id), nil, &p); err != nil {
			c.apiErrorPage(w, r, err)
			return
		}
		f.Title, f.ID, f.Policy, f.HasSecret = "Edit mirror of "+repo, id, p, p.Password != ""
		f.Policy.Password = ""
		f.DockerHub = p.RemoteHost == mirror.DockerHub
	}
	f.Rules = padRules(f.Policy.Rules)
	c.render(w, http.StatusOK, "mirror_form", f)
}

func padRules(rs []mirror.Rule) []mirror.Rule {
	out := append([]mirror.Rule(nil), rs...)
	for len(out) < ruleRows {
		out = append(out, mirror.Rule{Field: "tag", Operator: mirror.OpEquals})
	}
	return out
}

// policyFromForm reads a policy from the posted form.
func policyFromForm(r *http.Request) (mirror.Policy, bool) {
	dockerHub := r.PostFormValue("registryType") == "dockerhub"
	p := mirror.Policy{
		RemoteHost:          strings.TrimSpace(r.PostFormValue("remoteHost")),
		RemoteRepository:    strings.TrimSpace(r.PostFormValue("remoteRepository")),
		Username:            strings.TrimSpace(r.PostFormValue("username")),
		Password:            r.PostFormValue("password"),
		RemoteCA:            strings.TrimSpace(r.PostFormValue("remoteCA")),
		SkipTLSVerification: r.PostFormValue("skipTLSVerification") == "on",
		TagTemplate:         strings.TrimSpace(r.PostFormValue("tagTemplate")),
		Enabled:             r.PostFormValue("enabled") == "on",
		Rules:               []mirror.Rule{},
	}
	if dockerHub {
		p.RemoteHost = mirror.DockerHub
	}
	fields, ops, values := r.PostForm["ruleField"], r.PostForm["ruleOperator"], r.PostForm["ruleValues"]
	for i := range values {
		var vs []string
		for _, v := range strings.Split(values[i], ",") {
			if v = strings.TrimSpace(v); v != "" {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 || i >= len(fields) || i >= len(ops) {
			continue
		}
		p.Rules = append(p.Rules, mirror.Rule{Field: fields[i], Operator: ops[i], Values: vs})
	}
	return p, dockerHub
}

// policyBody is a policy as the API takes it ("enabled" explicit; the
// read-only fields left out).
func policyBody(p mirror.Policy) map[string]any {
	b := map[string]any{
		"remoteHost": p.RemoteHost, "remoteRepository": p.RemoteRepository,
		"skipTLSVerification": p.SkipTLSVerification, "tagTemplate": p.TagTemplate,
		"enabled": p.Enabled, "rules": p.Rules,
	}
	if p.Username != "" || p.Password != "" {
		b["username"], b["password"] = p.Username, p.Password
	}
	if p.RemoteCA != "" {
		b["remoteCA"] = p.RemoteCA
	}
	return b
}

// mirrorSubmit handles the form's three buttons: Connect (check the remote
// with these settings, store nothing), Save (create without initial
// evaluation, or update) and Save & Apply (create with initialEvaluation).
// Errors are shown next to the field they concern.
func (c *Console) mirrorSubmit(w http.ResponseWriter, r *http.Request, s session) {
	repo, id := r.PostFormValue("repo"), r.PostFormValue("id")
	if !mirrorable(repo) {
		c.errorPage(w, r, http.StatusNotFound, "Mirrors belong to a hosted repository named namespace/repository.")
		return
	}
	kind := parseKind(r.PostFormValue("direction"))
	p, dockerHub := policyFromForm(r)
	action := r.PostFormValue("action")
	base := policyPath(repo, kind)
	var err error
	var done string
	switch {
	case action == "connect":
		if id != "" && p.Password == "" && p.Username != "" {
			// Edit: the stored password stands for an empty field, as in a
			// PUT; a connect check needs it, so the API's update path is not
			// usable. Say so rather than test without it.
			err = &apiError{http.StatusBadRequest, "PASSWORD_NEEDED", "enter the password or token again to test the connection; it is kept when you save without one"}
			break
		}
		err = c.callAPI(r.Context(), s, http.MethodPost, base+"/connect", policyBody(p), nil)
	case id != "":
		err, done = c.callAPI(r.Context(), s, http.MethodPut, base+"/"+url.PathEscape(id), policyBody(p), nil), "saved"
	case action == "apply":
		err, done = c.callAPI(r.Context(), s, http.MethodPost, base+"?initialEvaluation=true", policyBody(p), nil), "applied"
	default:
		err, done = c.callAPI(r.Context(), s, http.MethodPost, base+"?initialEvaluation=false", policyBody(p), nil), "saved"
	}
	if err == nil && done != "" {
		http.Redirect(w, r, Prefix+"mirrors?repo="+url.QueryEscape(repo)+"&done="+done, http.StatusSeeOther)
		return
	}
	title := "New mirror for " + repo
	if id != "" {
		title = "Edit mirror of " + repo
	}
	f := mirrorForm{page: c.base(s, title, "repositories"), Repo: repo, ID: id, Kind: kind, DockerHub: dockerHub,
		HasSecret: id != "" || p.Password != "", Errors: map[string]string{}}
	f.Policy, f.Policy.Password = p, ""
	f.Rules = padRules(p.Rules)
	status := http.StatusOK
	if err == nil {
		f.Connected = "Connected: the remote registry accepted these settings."
	} else {
		var ae *apiError
		if !errors.As(err, &ae) {
			c.log.WithError(err).Error("console: mirroring API")
			ae = &apiError{http.StatusInternalServerError, "INTERNAL", "the mirroring API failed; see the server log"}
		}
		status = ae.Status
		f.Errors[fieldOf(ae)] = plain(ae.Message)
	}
	if r.Header.Get("Accept") == "application/json" { // the Connect button's script
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"connected": f.Connected, "errors": f.Errors})
		return
	}
	c.render(w, status, "mirror_form", f)
}

// fieldOf is the form field an API error concerns.
func fieldOf(ae *apiError) string {
	m := strings.ToLower(ae.Message)
	switch {
	case ae.Code == "PASSWORD_NEEDED":
		return "credentials"
	case strings.HasPrefix(m, "remotehost"):
		return "remoteHost"
	case strings.HasPrefix(m, "remoterepository"), strings.HasPrefix(m, "remote repository"):
		return "remoteRepository"
	case strings.HasPrefix(m, "remoteca"):
		return "remoteCA"
	case strings.HasPrefix(m, "give username"):
		return "credentials"
	case strings.HasPrefix(m, "rule"), strings.Contains(m, "rule field"):
		return "rules"
	case strings.HasPrefix(m, "tag template"):
		return "tagTemplate"
	case ae.Code == "REMOTE_CONNECT_FAILED":
		if strings.Contains(m, "unauthorized") || strings.Contains(m, "401") || strings.Contains(m, "denied") {
			return "credentials"
		}
		if strings.Contains(m, "name_unknown") || strings.Contains(m, "repository name not known") {
			return "remoteRepository"
		}
		return "remoteHost"
	}
	return "form"
}

// plain makes an API message a sentence: first letter up, a final period.
func plain(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "Something went wrong."
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// mirrorDelete deletes a policy.
func (c *Console) mirrorDelete(w http.ResponseWriter, r *http.Request, s session) {
	repo, id, kind := r.PostFormValue("repo"), r.PostFormValue("id"), parseKind(r.PostFormValue("direction"))
	if !mirrorable(repo) || id == "" {
		c.errorPage(w, r, http.StatusBadRequest, "Which mirror? The form lacked its repository or id.")
		return
	}
	if err := c.callAPI(r.Context(), s, http.MethodDelete, policyPath(repo, kind)+"/"+url.PathEscape(id), nil, nil); err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"mirrors?repo="+url.QueryEscape(repo)+"&done=deleted", http.StatusSeeOther)
}

// mirrorEnable enables or disables a policy (a PUT of the stored policy with
// enabled changed; the masked password keeps the stored one).
func (c *Console) mirrorEnable(w http.ResponseWriter, r *http.Request, s session) {
	repo, id, kind := r.PostFormValue("repo"), r.PostFormValue("id"), parseKind(r.PostFormValue("direction"))
	if !mirrorable(repo) || id == "" {
		c.errorPage(w, r, http.StatusBadRequest, "Which mirror? The form lacked its repository or id.")
		return
	}
	path := policyPath(repo, kind) + "/" + url.PathEscape(id)
	var p mirror.Policy
	if err := c.callAPI(r.Context(), s, http.MethodGet, path, nil, &p); err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	p.Enabled = r.PostFormValue("enabled") == "true"
	if err := c.callAPI(r.Context(), s, http.MethodPut, path, policyBody(p), nil); err != nil {
		c.apiErrorPage(w, r, err)
		return
	}
	done := "disabled"
	if p.Enabled {
		done = "enabled"
	}
	http.Redirect(w, r, Prefix+"mirrors?repo="+url.QueryEscape(repo)+"&done="+done, http.StatusSeeOther)
}
