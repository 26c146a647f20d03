package mirror

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestMatchTag(t *testing.T) {
	rule := func(op string, values ...string) []Rule { return []Rule{{Field: "tag", Operator: op, Values: values}} }
	cases := []struct {
		rules []Rule
		tag   string
		want  bool
	}{
		{rule(OpEquals, "v1"), "v1", true},
		{rule(OpEquals, "v1"), "v10", false},
		{rule(OpStartsWith, "v1.", "rc-"), "v1.2", true},
		{rule(OpStartsWith, "v1."), "v2.1", false},
		{rule(OpEndsWith, "-prod"), "1.0-prod", true},
		{rule(OpEndsWith, "-prod"), "1.0-dev", false},
		{rule(OpContains, "alpine"), "3.20-alpine-slim", true},
		{rule(OpContains, "alpine"), "bookworm", false},
		{rule(OpOneOf, "latest", "stable"), "stable", true},
		{rule(OpOneOf, "latest", "stable"), "edge", false},
		{rule(OpNotOneOf, "latest", "edge"), "v1", true},
		{rule(OpNotOneOf, "latest", "edge"), "edge", false},
		{nil, "anything", true},
		{append(rule(OpStartsWith, "v"), rule(OpNotOneOf, "v0")...), "v0", false}, // all must hold
		{append(rule(OpStartsWith, "v"), rule(OpNotOneOf, "v0")...), "v1", true},
	}
	for _, tc := range cases {
		if got := MatchTag(tc.rules, tc.tag); got != tc.want {
			t.Errorf("MatchTag(%v, %q) = %v, want %v", tc.rules, tc.tag, got, tc.want)
		}
	}
}

func TestMatchLicense(t *testing.T) {
	oneOf := []Rule{{Field: "license", Operator: OpOneOf, Values: []string{"MIT", "Apache-2.0"}}}
	notOneOf := []Rule{{Field: "license", Operator: OpNotOneOf, Values: []string{"GPL-3.0-only", "AGPL-3.0-only"}}}
	cases := []struct {
		rules []Rule
		expr  string
		want  bool
	}{
		{oneOf, "MIT", true},
		{oneOf, "mit", true},
		{oneOf, "GPL-3.0-only OR Apache-2.0", true},
		{oneOf, "BSD-3-Clause", false},
		{oneOf, "", false},
		{notOneOf, "MIT", true},
		{notOneOf, "(MIT AND GPL-3.0-only)", false},
		{notOneOf, "", true},
	}
	for _, tc := range cases {
		if got := MatchLicense(tc.rules, tc.expr); got != tc.want {
			t.Errorf("MatchLicense(%v, %q) = %v, want %v", tc.rules[0].Operator, tc.expr, got, tc.want)
		}
	}
}

func TestPlatformFilter(t *testing.T) {
	all := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "windows", Architecture: "amd64"}}
	str := func(ps []v1.Platform) string {
		if ps == nil {
			return "nil"
		}
		var s []string
		for _, p := range ps {
			s = append(s, p.String())
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		rules []Rule
		want  string
	}{
		{nil, "nil"},
		{[]Rule{{Field: "tag", Operator: OpEquals, Values: []string{"x"}}}, "nil"},
		{[]Rule{{Field: "platform", Operator: OpOneOf, Values: []string{"linux/amd64", "linux/arm64"}}}, "linux/amd64,linux/arm64/v8"},
		{[]Rule{{Field: "platform", Operator: OpEquals, Values: []string{"linux/arm/v6"}}}, ""},
		{[]Rule{{Field: "platform", Operator: OpNotOneOf, Values: []string{"windows/amd64"}}}, "linux/amd64,linux/arm64/v8,linux/arm/v7"},
	}
	for _, tc := range cases {
		if got := str(PlatformFilter(tc.rules, all)); got != tc.want {
			t.Errorf("PlatformFilter(%v) = %s, want %s", tc.rules, got, tc.want)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	cases := []struct {
		rule Rule
		err  string
	}{
		{Rule{"tag", OpStartsWith, []string{"v"}}, ""},
		{Rule{"license", OpOneOf, []string{"MIT"}}, ""},
		{Rule{"platform", OpOneOf, []string{"linux/arm64"}}, ""},
		{Rule{"component", OpEquals, []string{"openssl"}}, "scanner"},
		{Rule{"vulnerability_critical", "greater_than", []string{"0"}}, "scanner"},
		{Rule{"size", OpEquals, []string{"1"}}, "unknown rule field"},
		{Rule{"license", OpStartsWith, []string{"MIT"}}, "not one of one_of, not_one_of"},
		{Rule{"tag", OpEquals, nil}, "must not be empty"},
		{Rule{"platform", OpOneOf, []string{"linux"}}, "os/arch"},
	}
	for _, tc := range cases {
		err := tc.rule.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Validate(%v) = %v, want %q", tc.rule, err, tc.err)
		}
	}
}

func TestExpandTag(t *testing.T) {
	now := time.Date(2026, 11, 23, 6, 5, 4, 0, time.FixedZone("x", 3600))
	hexd := "0123456789abcdef0123"
	cases := []struct {
		template, want, err string
	}{
		{"", "v1", ""},
		{"%n", "v1", ""},
		{"mirror-%n", "mirror-v1", ""},
		{"%n-%t", "v1-20261123T050504Z", ""},
		{"%n-%d", "v1-0123456789ab", ""},
		{"100%%-%n", "", "not a valid tag"},
		{"%x", "", "unknown placeholder"},
		{"%n%", "", "ends with"},
		{"-%n", "", "not a valid tag"},
	}
	for _, tc := range cases {
		got, err := ExpandTag(tc.template, "v1", hexd, now)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ExpandTag(%q) = %q, %v; want %q, %q", tc.template, got, err, tc.want, tc.err)
		}
	}
}
