package mirror

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Rule is one condition of a mirroring policy, in DTR's shape. All rules of a
// policy must hold. Fields: "tag" (every operator), "license" (one_of,
// not_one_of: the image's org.opencontainers.image.licenses), "platform"
// (one_of, not_one_of, equals: which platforms of an index to copy).
type Rule struct {
	Field    string   `json:"field"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

// The operators, DTR's.
const (
	OpEquals     = "equals"
	OpStartsWith = "starts_with"
	OpEndsWith   = "ends_with"
	OpContains   = "contains"
	OpOneOf      = "one_of"
	OpNotOneOf   = "not_one_of"
)

// LicenseKey is the label or annotation the license rule reads.
const LicenseKey = "org.opencontainers.image.licenses"

// scannerFields are DTR rule fields that need an image scanner.
var scannerFields = []string{"component", "vulnerability_all", "vulnerability_critical", "vulnerability_major",
	"vulnerability_minor", "vulnerability", "license.name"}

// Validate reports what is wrong with r in words an API user can act on.
func (r Rule) Validate() error {
	if slices.Contains(scannerFields, r.Field) || strings.HasPrefix(r.Field, "vulnerability") {
		return fmt.Errorf("rule field %q needs an image scanner, which this server does not have; use tag, license or platform", r.Field)
	}
	ops := map[string][]string{
		"tag":      {OpEquals, OpStartsWith, OpEndsWith, OpContains, OpOneOf, OpNotOneOf},
		"license":  {OpOneOf, OpNotOneOf},
		"platform": {OpEquals, OpOneOf, OpNotOneOf},
	}
	allowed, ok := ops[r.Field]
	switch {
	case !ok:
		return fmt.Errorf("unknown rule field %q: use tag, license or platform", r.Field)
	case !slices.Contains(allowed, r.Operator):
		return fmt.Errorf("rule on %s: operator %q is not one of %s", r.Field, r.Operator, strings.Join(allowed, ", "))
	case len(r.Values) == 0:
		return fmt.Errorf("rule on %s %s: values must not be empty", r.Field, r.Operator)
	}
	if r.Field == "platform" {
		for _, v := range r.Values {
			if _, err := v1.ParsePlatform(v); err != nil || !strings.Contains(v, "/") {
				return fmt.Errorf("rule on platform: %q is not os/arch[/variant]", v)
			}
		}
	}
	return nil
}

// MatchTag reports whether every tag rule holds for tag.
func MatchTag(rules []Rule, tag string) bool {
	for _, r := range rules {
		if r.Field == "tag" && !r.holds(tag) {
			return false
		}
	}
	return true
}

// HasLicenseRules reports whether evaluating rules needs the image's licenses.
func HasLicenseRules(rules []Rule) bool {
	return slices.ContainsFunc(rules, func(r Rule) bool { return r.Field == "license" })
}

// MatchLicense reports whether every license rule holds for an image whose
// license expression is expr (SPDX, e.g. "MIT OR Apache-2.0"; "" when unknown).
// one_of holds when any license is listed; not_one_of when none is. An image
// without a license matches no one_of rule and every not_one_of rule.
func MatchLicense(rules []Rule, expr string) bool {
	licenses := spdxIDs(expr)
	for _, r := range rules {
		if r.Field != "license" {
			continue
		}
		listed := slices.ContainsFunc(licenses, func(l string) bool {
			return slices.ContainsFunc(r.Values, func(v string) bool { return strings.EqualFold(v, l) })
		})
		if listed != (r.Operator == OpOneOf) {
			return false
		}
	}
	return true
}

// spdxIDs lists the license identifiers of an SPDX expression.
func spdxIDs(expr string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(expr, func(r rune) bool { return r == ' ' || r == '(' || r == ')' || r == ',' }) {
		switch strings.ToUpper(f) {
		case "AND", "OR", "WITH":
			continue
		}
		out = append(out, f)
	}
	return out
}

// PlatformFilter returns the platforms the platform rules select from
// candidates, or nil when there are no platform rules (copy the index whole).
// A value without a variant ("linux/arm64") matches every variant.
func PlatformFilter(rules []Rule, candidates []v1.Platform) []v1.Platform {
	var prs []Rule
	for _, r := range rules {
		if r.Field == "platform" {
			prs = append(prs, r)
		}
	}
	if len(prs) == 0 {
		return nil
	}
	out := []v1.Platform{}
	for _, p := range candidates {
		keep := true
		for _, r := range prs {
			listed := slices.ContainsFunc(r.Values, func(v string) bool { return platformMatches(v, p) })
			keep = keep && listed == (r.Operator != OpNotOneOf)
		}
		if keep {
			out = append(out, p)
		}
	}
	return out
}

func platformMatches(value string, p v1.Platform) bool {
	want, err := v1.ParsePlatform(value)
	return err == nil && want.OS == p.OS && want.Architecture == p.Architecture &&
		(want.Variant == "" || want.Variant == p.Variant)
}

// holds applies the operator to s.
func (r Rule) holds(s string) bool {
	switch r.Operator {
	case OpEquals, OpOneOf:
		return slices.Contains(r.Values, s)
	case OpNotOneOf:
		return !slices.Contains(r.Values, s)
	case OpStartsWith:
		return slices.ContainsFunc(r.Values, func(v string) bool { return strings.HasPrefix(s, v) })
	case OpEndsWith:
		return slices.ContainsFunc(r.Values, func(v string) bool { return strings.HasSuffix(s, v) })
	case OpContains:
		return slices.ContainsFunc(r.Values, func(v string) bool { return strings.Contains(s, v) })
	}
	return false
}

var tagRegexp = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// ExpandTag fills a tag template: %n the source tag, %t the UTC time as
// 20060102T150405Z, %d the first 12 hex digits of the digest, %% a percent
// sign. An empty template is %n. The result must be a valid tag.
func ExpandTag(template, tag, digestHex string, now time.Time) (string, error) {
	if template == "" {
		template = "%n"
	}
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(template) {
			return "", fmt.Errorf("tag template %q ends with %%", template)
		}
		i++
		switch template[i] {
		case 'n':
			b.WriteString(tag)
		case 't':
			b.WriteString(now.UTC().Format("20060102T150405Z"))
		case 'd':
			b.WriteString(digestHex[:min(12, len(digestHex))])
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("tag template %q: unknown placeholder %%%c (use %%n, %%t, %%d)", template, template[i])
		}
	}
	out := b.String()
	if !tagRegexp.MatchString(out) {
		return "", fmt.Errorf("tag template %q gives %q, which is not a valid tag", template, out)
	}
	return out, nil
}
