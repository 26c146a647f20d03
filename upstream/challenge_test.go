package upstream

import (
	"maps"
	"testing"
)

// Real headers, also the fuzz seed corpus.
var realChallenges = []string{
	// Docker Hub
	`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`,
	// ghcr.io
	`Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"`,
	// quay.io
	`Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:coreos/etcd:pull"`,
	// distribution with htpasswd
	`Basic realm="Registry Realm"`,
	// GCR / Artifact Registry
	`Bearer realm="https://gcr.io/v2/token",service="gcr.io",scope="repository:google-containers/pause:pull"`,
	// ECR
	`Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"`,
	// Harbor with an error
	`Bearer realm="https://harbor.example.com/service/token",service="harbor-registry",scope="repository:p/r:pull",error="insufficient_scope"`,
	// several challenges in one value
	`Negotiate, Basic realm="x", Bearer realm="https://a/b?c=d,e"`,
}

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   []challenge
	}{
		{"docker hub", realChallenges[0], []challenge{{Scheme: "bearer", Params: map[string]string{
			"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/alpine:pull",
		}}}},
		{"basic", realChallenges[3], []challenge{{Scheme: "basic", Params: map[string]string{"realm": "Registry Realm"}}}},
		{"several, comma inside quotes", realChallenges[7], []challenge{
			{Scheme: "negotiate", Params: map[string]string{}},
			{Scheme: "basic", Params: map[string]string{"realm": "x"}},
			{Scheme: "bearer", Params: map[string]string{"realm": "https://a/b?c=d,e"}},
		}},
		{"escapes", `Bearer realm="a\"b\\c", service="s"`, []challenge{{Scheme: "bearer", Params: map[string]string{
			"realm": `a"b\c`, "service": "s",
		}}}},
		{"case, spaces and bare values", "BEARER  Realm = https://x/token , SERVICE=reg", []challenge{{Scheme: "bearer", Params: map[string]string{
			"realm": "https://x/token", "service": "reg",
		}}}},
		{"multi-word scope", `Bearer realm="r",scope="repository:a:pull repository:b:pull"`, []challenge{{Scheme: "bearer", Params: map[string]string{
			"realm": "r", "scope": "repository:a:pull repository:b:pull",
		}}}},
		{"token68", "Negotiate YWJjZA==, Basic realm=x", []challenge{
			{Scheme: "negotiate", Params: map[string]string{}, Token68: "YWJjZA=="},
			{Scheme: "basic", Params: map[string]string{"realm": "x"}},
		}},
		{"first duplicate wins", `Bearer realm="one", realm="two"`, []challenge{{Scheme: "bearer", Params: map[string]string{"realm": "one"}}}},
		{"unterminated quote", `Bearer realm="https://x, service=y`, []challenge{{Scheme: "bearer", Params: map[string]string{"realm": "https://x, service=y"}}}},
		{"empty", "", nil},
		{"garbage", `"=,@ ;`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseChallenges(tt.header)
			if !equalChallenges(got, tt.want) {
				t.Errorf("parseChallenges(%q)\n got %+v\nwant %+v", tt.header, got, tt.want)
			}
		})
	}
}

func equalChallenges(a, b []challenge) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Scheme != b[i].Scheme || a[i].Token68 != b[i].Token68 || !maps.Equal(a[i].Params, b[i].Params) {
			return false
		}
	}
	return true
}

func TestBearerStatePicksUsableRealm(t *testing.T) {
	chs := parseChallenges(`Basic realm="x", Bearer realm="not a url", Bearer realm="https://auth.example.com/token",service="svc",scope="repository:a:pull"`)
	st, scope, ok := bearerState(chs)
	if !ok || st.realm != "https://auth.example.com/token" || st.service != "svc" || scope != "repository:a:pull" {
		t.Errorf("bearerState = %+v %q %v", st, scope, ok)
	}
	if _, _, ok := bearerState(parseChallenges(`Basic realm="x"`)); ok {
		t.Error("bearerState found a bearer challenge in a Basic one")
	}
}
