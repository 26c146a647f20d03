package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Messages of errors about keys the proxy recognises but does not support.
const (
	msgUnsupported       = "not supported by this proxy yet"
	msgUnsupportedDriver = `storage driver not supported (only "filesystem", "s3", "gcs" and "azure" are)`
)

// rejection describes a distribution key this proxy refuses.
type rejection struct {
	msg        string
	allowEmpty bool // an empty (null or {}) value is accepted
}

// rejected lists distribution keys that are refused. Any other unknown key
// under storage names a storage driver and is refused as well.
var rejected = map[string]rejection{
	"auth.silly":           {msgUnsupported, true},
	"notifications":        {msgUnsupported, true},
	"middleware":           {msgUnsupported, true},
	"storage.tag":          {msgUnsupported, true},
	"http.tls.letsencrypt": {msgUnsupported, true},
	"proxy.exec":           {msgUnsupported, true},
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// parseYAML parses data into the root mapping node. Empty or null documents
// yield an empty mapping.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return emptyMapping(), nil
	} else if err != nil {
		return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: "invalid YAML: only one document is allowed"}
	}
	root := doc.Content[0]
	switch {
	case isNull(root):
		return emptyMapping(), nil
	case root.Kind != yaml.MappingNode:
		return nil, &Error{Msg: "the configuration must be a YAML mapping"}
	}
	return root, nil
}

// emptyMapping returns a new empty mapping node.
func emptyMapping() *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
}

// decodeConfig decodes the root mapping into cfg, keeping the values already
// in cfg for absent or null keys.
func decodeConfig(root *yaml.Node, cfg *Config) error {
	return decodeValue("", root, reflect.ValueOf(cfg).Elem())
}

// decodeValue decodes n, found at the dotted key path, into v.
func decodeValue(path string, n *yaml.Node, v reflect.Value) error {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(path, n, v.Elem())
	case v.Type() == durationType:
		d := (*Duration)(v.Addr().Interface().(*time.Duration))
		return withKey(path, d.UnmarshalYAML(n))
	case v.Addr().Type().Implements(unmarshalerType):
		u := v.Addr().Interface().(yaml.Unmarshaler)
		return withKey(path, u.UnmarshalYAML(n))
	case v.Kind() == reflect.Struct:
		return decodeStruct(path, n, v)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		return decodeStructs(path, n, v)
	}
	return decodeLeaf(path, n, v)
}

// decodeStruct decodes the mapping n into the struct v, field by yaml tag.
func decodeStruct(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return newError(path, scalarValue(n), "expected a mapping")
	}
	if err := decodeMerges(path, n, v); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return newError(path, "", "keys must be strings")
		}
		key := joinKey(path, k.Value)
		if seen[k.Value] {
			return newError(key, "", "duplicate key")
		}
		seen[k.Value] = true
		f, ok := fieldByKey(v, k.Value)
		if !ok {
			if err := checkUnknown(path, key, val); err != nil {
				return err
			}
			continue
		}
		if err := decodeValue(key, val, f); err != nil {
			return err
		}
	}
	return nil
}

// decodeStructs decodes the sequence n into the slice of structs v, each element
// as strictly as a section (key[i].field in errors).
func decodeStructs(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.SequenceNode {
		return newError(path, scalarValue(n), "expected a list")
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if err := decodeStruct(fmt.Sprintf("%s[%d]", path, i), deref(item), out.Index(i)); err != nil {
			return err
		}
	}
	v.Set(out)
	return nil
}

// decodeMerges applies the YAML merge keys ("<<: *anchor") of n to v before
// its own keys, which take precedence.
func decodeMerges(path string, n *yaml.Node, v reflect.Value) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			continue
		}
		sources := []*yaml.Node{n.Content[i+1]}
		if m := deref(n.Content[i+1]); m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			if err := decodeStruct(path, deref(src), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkUnknown returns the error for key, which names no field; val is its
// value. Empty values of some refused sections are tolerated.
func checkUnknown(parent, key string, val *yaml.Node) error {
	if r, ok := rejected[key]; ok && r.allowEmpty && isEmpty(val) {
		return nil
	}
	return unknownKeyError(parent, key)
}

// decodeLeaf decodes n into v with yaml.v3, replacing its error (which may
// quote the value) by one naming the key and the expected type.
func decodeLeaf(path string, n *yaml.Node, v reflect.Value) error {
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		return newError(path, scalarValue(n), "expected "+describe(v.Type()))
	}
	v.Set(tmp.Elem())
	return nil
}

// withKey sets the key of an error returned by a value's UnmarshalYAML.
func withKey(path string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Key == "" {
		e.Key = path
		e.Value = maskValue(path, e.Value)
		return e
	}
	return &Error{Key: path, Msg: "invalid value", Err: err}
}

// fieldByKey returns the field of struct v whose yaml tag is name.
func fieldByKey(v reflect.Value, name string) (reflect.Value, bool) {
	i, ok := fieldIndex(v.Type(), name)
	if !ok {
		return reflect.Value{}, false
	}
	return v.Field(i), true
}

// fieldIndex returns the index of the field of struct type t whose yaml tag
// is name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name && tag != "" && tag != "-" {
			return i, true
		}
	}
	return 0, false
}

// describe names what a value of type t looks like, for error messages.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ") + "s"
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "a mapping"
		}
		return "a mapping to " + describe(t.Elem())
	}
	return "a " + t.String()
}

// deref follows alias nodes to the node they refer to.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is a null scalar (or an empty node).
func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// isEmpty reports whether n is null or an empty mapping or sequence.
func isEmpty(n *yaml.Node) bool {
	n = deref(n)
	return isNull(n) || ((n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && len(n.Content) == 0)
}

// isMergeKey reports whether k is the YAML merge key "<<".
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// scalarValue returns the text of a scalar node, "" for other nodes.
func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}
