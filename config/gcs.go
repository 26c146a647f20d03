package config

import (
	"fmt"
	"strconv"
)

// gcsMinChunkSize is the gcs driver's smallest chunksize; chunksize must be a
// multiple of it (GCS's resumable upload granularity).
const gcsMinChunkSize = 256 << 10

// GCSKeys are the parameters distribution's gcs driver reads (its
// FromParameters in v3.1.2), by type. storage.gcs accepts these and no
// others, so that a misspelt key stops the start instead of being ignored.
var GCSKeys = map[string]string{
	"bucket":         typeString,
	"rootdirectory":  typeString,
	"keyfile":        typeString,
	"credentials":    typeMapping,
	"useragent":      typeString,
	"chunksize":      typeInt,
	"maxconcurrency": typeInt,
}

// GCSCredentialKeys are the keys of storage.gcs.credentials: the fields of a
// service account's JSON key, which the driver hands to Google's libraries.
var GCSCredentialKeys = map[string]string{
	"type":                        typeString,
	"project_id":                  typeString,
	"private_key_id":              typeString,
	"private_key":                 typeString,
	"client_email":                typeString,
	"client_id":                   typeString,
	"auth_uri":                    typeString,
	"token_uri":                   typeString,
	"auth_provider_x509_cert_url": typeString,
	"client_x509_cert_url":        typeString,
	"universe_domain":             typeString,
}

// validateGCS checks the gcs driver parameters: known keys of the right type,
// a bucket, a chunksize the driver takes, and at most one of keyfile and
// credentials (a service account key; without either the driver uses
// Google's application default credentials).
func validateGCS(p map[string]any) error {
	nested := map[string]map[string]string{"credentials": GCSCredentialKeys}
	if err := checkParams("storage.gcs", GCSKeys, nested, p); err != nil {
		return err
	}
	if b, _ := p["bucket"].(string); b == "" {
		return newError("storage.gcs.bucket", "", "required")
	}
	if v, ok := p["chunksize"]; ok && v != nil {
		if n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64); n < gcsMinChunkSize || n%gcsMinChunkSize != 0 {
			return newError("storage.gcs.chunksize", fmt.Sprint(v), fmt.Sprintf("must be a positive multiple of %d (256 KiB)", gcsMinChunkSize))
		}
	}
	creds, _ := p["credentials"].(map[string]any)
	if kf, _ := p["keyfile"].(string); kf != "" && creds != nil {
		return newError("storage.gcs.credentials", "", "give keyfile or credentials, not both (the driver would ignore credentials)")
	}
	if creds == nil {
		return nil
	}
	if t, _ := creds["type"].(string); t != "service_account" {
		return newError("storage.gcs.credentials.type", fmt.Sprint(creds["type"]), `must be "service_account" (the driver reads a service account key)`)
	}
	for _, k := range []string{"client_email", "private_key"} {
		if v, _ := creds[k].(string); v == "" {
			return newError("storage.gcs.credentials."+k, "", "required in a service account key")
		}
	}
	return nil
}
