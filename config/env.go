package config

import (
	"cmp"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the names of environment variables that override
// configuration keys.
const EnvPrefix = "REGISTRY_"

// envIgnored reports REGISTRY_ variables that are not configuration keys:
// distribution's cmd reads the configuration file path from
// REGISTRY_CONFIGURATION_PATH, and Kubernetes sets REGISTRY_SERVICE_HOST,
// REGISTRY_PORT, REGISTRY_PORT_5000_TCP... for a Service named "registry".
func envIgnored(name string) bool {
	return name == "REGISTRY_CONFIGURATION_PATH" || name == "REGISTRY_PORT" ||
		strings.HasPrefix(name, "REGISTRY_PORT_") || strings.HasPrefix(name, "REGISTRY_SERVICE_")
}

// envOverride is one REGISTRY_ variable.
type envOverride struct {
	name, value string
	segs        []string // lowercased key path
}

// applyEnv applies the REGISTRY_ variables of environ to the YAML tree
// rooted at the mapping root. It returns the dotted keys set, each mapped to
// the variable that set it.
func applyEnv(root *yaml.Node, environ []string) (map[string]string, error) {
	keys := make(map[string]string)
	for _, ev := range envOverrides(environ) {
		key := strings.Join(ev.segs, ".")
		err := applyOne(root, key, ev)
		if err != nil {
			err.Env = ev.name
			return nil, err
		}
		keys[key] = ev.name
	}
	return keys, nil
}

// applyOne sets the key of ev in the tree after checking it names a known
// key.
func applyOne(root *yaml.Node, key string, ev envOverride) *Error {
	t, err := envTarget(ev.segs)
	if err != nil {
		return err
	}
	val, err := envNode(key, t, ev.value)
	if err != nil {
		return err
	}
	return setNode(root, ev.segs, val)
}

// envOverrides extracts the REGISTRY_ variables from environ; a later entry
// for the same name wins. Shorter paths come first so that
// REGISTRY_PROXY_TTL overrides a ttl set by REGISTRY_PROXY.
func envOverrides(environ []string) []envOverride {
	byName := make(map[string]envOverride)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || envIgnored(name) {
			continue
		}
		segs := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "_")
		byName[name] = envOverride{name: name, value: value, segs: segs}
	}
	out := make([]envOverride, 0, len(byName))
	for _, ev := range byName {
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b envOverride) int {
		return cmp.Or(cmp.Compare(len(a.segs), len(b.segs)), strings.Compare(a.name, b.name))
	})
	return out
}

// envTarget returns the Go type of the key path segs, or an error if the
// path names no key that can be set from the environment. Below the
// free-form (map[string]any) sections any path is accepted.
func envTarget(segs []string) (reflect.Type, *Error) {
	t := reflect.TypeFor[Config]()
	for i, seg := range segs {
		key := strings.Join(segs[:i+1], ".")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case seg == "":
			return nil, newError(key, "", MsgUnknownKey)
		case t.Kind() == reflect.Struct:
			idx, ok := fieldIndex(t, seg)
			if !ok {
				return nil, unknownKeyError(parentKey(key), key)
			}
			t = t.Field(idx).Type
		case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface:
			return t.Elem(), nil
		case t.Kind() == reflect.Map:
			return nil, newError(parentKey(key), "",
				"single keys of this mapping cannot be set from the environment; set the whole mapping as YAML")
		default:
			return nil, newError(key, "", MsgUnknownKey)
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t, nil
}

// unknownKeyError returns the error for a key that names no field.
func unknownKeyError(parent, key string) *Error {
	if r, ok := rejected[key]; ok {
		return newError(key, "", r.msg)
	}
	if parent == "storage" {
		return newError(key, "", msgUnsupportedDriver)
	}
	return newError(key, "", MsgUnknownKey)
}

// envNode turns the value of a variable into a YAML node for a key of type
// t. Strings are taken verbatim; other scalars are resolved like plain YAML
// scalars ("true", "3", "1h"); lists, mappings and sections are parsed as
// YAML ("[a, b]", "{X-Foo: [bar]}"), as distribution does.
func envNode(key string, t reflect.Type, value string) (*yaml.Node, *Error) {
	switch t.Kind() {
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}, nil
	case reflect.Slice, reflect.Map, reflect.Struct:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
			return nil, newError(key, value, "invalid YAML value")
		}
		if len(doc.Content) == 0 {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, nil
		}
		return doc.Content[0], nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Value: value}, nil
}

// setNode sets the key path segs of the mapping root to val, creating
// missing mappings. Mappings along the path are copied first so that YAML
// anchors shared with other keys are left unchanged.
func setNode(root *yaml.Node, segs []string, val *yaml.Node) *Error {
	cur := root
	for i, seg := range segs[:len(segs)-1] {
		idx := valueIndex(cur, seg)
		if idx < 0 {
			m := emptyMapping()
			cur.Content = append(cur.Content, keyNode(seg), m)
			cur = m
			continue
		}
		child := deref(cur.Content[idx])
		switch {
		case isNull(child):
			child = emptyMapping()
		case child.Kind == yaml.MappingNode:
			c := *child
			c.Content = slices.Clone(child.Content)
			child = &c
		default:
			return newError(strings.Join(segs[:i+1], "."), "",
				"is not a mapping in the configuration file; cannot set a key inside it")
		}
		cur.Content[idx] = child
		cur = child
	}
	last := segs[len(segs)-1]
	if idx := valueIndex(cur, last); idx >= 0 {
		cur.Content[idx] = val
	} else {
		cur.Content = append(cur.Content, keyNode(last), val)
	}
	return nil
}

// valueIndex returns the index in m.Content of the value of key, or -1.
func valueIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind == yaml.ScalarNode && !isMergeKey(k) && k.Value == key {
			return i + 1
		}
	}
	return -1
}

// keyNode returns a mapping key node.
func keyNode(name string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
}
