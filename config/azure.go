package config

import "fmt"

// AzureKeys are the parameters distribution's azure driver reads (its
// DriverParameters in v3.1.2, decoded with mapstructure), by type.
// storage.azure accepts these and no others, so that a misspelt key stops
// the start instead of being ignored. connectionstring is among them only to
// be refused with a reason: v3.1.2 parses it and never uses it.
var AzureKeys = map[string]string{
	"accountname":      typeString,
	"accountkey":       typeString,
	"container":        typeString,
	"connectionstring": typeString,
	"realm":            typeString,
	"rootdirectory":    typeString,
	"serviceurl":       typeString,
	"credentials":      typeMapping,
	"max_retries":      typeStrictInt,
	"retry_delay":      typeDuration,
	"skipverify":       typeStrictBool,
}

// AzureCredentialKeys are the keys of storage.azure.credentials.
var AzureCredentialKeys = map[string]string{
	"type":     typeString,
	"clientid": typeString,
	"tenantid": typeString,
	"secret":   typeString,
}

// validateAzure checks the azure driver parameters: known keys of the right
// type, an account and a container, a credentials type the driver knows and
// what that type needs.
func validateAzure(p map[string]any) error {
	nested := map[string]map[string]string{"credentials": AzureCredentialKeys}
	if err := checkParams("storage.azure", AzureKeys, nested, p); err != nil {
		return err
	}
	if _, ok := p["connectionstring"]; ok {
		return newError("storage.azure.connectionstring", "", "not used by distribution's azure driver (v3.1.2 ignores it); "+
			"give accountname, accountkey and credentials: {type: shared_key} instead")
	}
	for _, k := range []string{"accountname", "container"} {
		if v, _ := p[k].(string); v == "" {
			return newError("storage.azure."+k, "", "required")
		}
	}
	if ep, _ := p["serviceurl"].(string); ep != "" {
		if err := validateURL("storage.azure.serviceurl", ep); err != nil {
			return err
		}
	}
	creds, _ := p["credentials"].(map[string]any)
	return validateAzureCredentials(creds, p["accountkey"])
}

// validateAzureCredentials checks storage.azure.credentials: shared_key needs
// accountkey, client_secret needs clientid,
// tenantid and secret; default_credentials takes them from the environment.
func validateAzureCredentials(creds map[string]any, accountKey any) error {
	var need []string
	t, _ := creds["type"].(string)
	switch t {
	case "shared_key":
		if key, _ := accountKey.(string); key == "" {
			return newError("storage.azure.accountkey", "", "required with credentials type shared_key")
		}
	case "client_secret":
		need = []string{"clientid", "tenantid", "secret"}
	case "default_credentials":
	default:
		return newError("storage.azure.credentials.type", t,
			"required: shared_key, client_secret or default_credentials")
	}
	for _, k := range need {
		if v, _ := creds[k].(string); v == "" {
			return newError("storage.azure.credentials."+k, "", "required with credentials type client_secret")
		}
	}
	return nil
}

// azureServiceURL is the blob service URL the azure driver uses: serviceurl,
// else https://<accountname>.blob.<realm> (realm core.windows.net by default).
func azureServiceURL(p map[string]any) string {
	if u, _ := p["serviceurl"].(string); u != "" {
		return u
	}
	realm, _ := p["realm"].(string)
	if realm == "" {
		realm = "core.windows.net"
	}
	return fmt.Sprintf("https://%v.blob.%s", p["accountname"], realm)
}
