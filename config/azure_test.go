package config

import "testing"

// azureBase is a valid azure configuration against Azurite's address.
const azureBase = `version: 0.1
storage:
  azure:
    accountname: devstoreaccount1
    accountkey: ` + secretPassword + `
    container: cache
    serviceurl: http://127.0.0.1:10000/devstoreaccount1
    rootdirectory: /mirror
    max_retries: 3
    retry_delay: 200ms
    credentials:
      type: shared_key
proxy:
  statedirectory: /var/lib/proxy
`

func TestAzure(t *testing.T) {
	cfg, err := Parse([]byte(azureBase), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Driver() != DriverAzure || cfg.StateDir() != "/var/lib/proxy" {
		t.Errorf("Driver() = %q, StateDir() = %q", cfg.Storage.Driver(), cfg.StateDir())
	}
	if d := cfg.Storage.Describe(); d != "azure://cache/mirror at 127.0.0.1:10000" {
		t.Errorf("Describe() = %q", d)
	}
	if p := cfg.Storage.DriverParams("/x"); p["rootdirectory"] != "/x" || p["max_retries"] != 3 || cfg.Storage.ObjectRoot() != "/mirror" {
		t.Errorf("DriverParams = %v, root %q", p, cfg.Storage.ObjectRoot())
	}
	cfg, err = Parse([]byte(azureBase), []string{"REGISTRY_STORAGE_AZURE_SERVICEURL=", "REGISTRY_STORAGE_AZURE_REALM=core.chinacloudapi.cn"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Storage.Describe(); d != "azure://cache/mirror at devstoreaccount1.blob.core.chinacloudapi.cn" {
		t.Errorf("Describe() without serviceurl = %q", d)
	}
}

func TestAzureErrors(t *testing.T) {
	testDriverErrors(t, azureBase, []driverErrorCase{
		{"unknown key", "    container: cache\n", "    container: cache\n    containr: x\n", "storage.azure.containr", MsgUnknownKey},
		{"unknown credentials key", "      type: shared_key\n", "      type: shared_key\n      tenant: t\n", "storage.azure.credentials.tenant", MsgUnknownKey},
		{"no account", "    accountname: devstoreaccount1\n", "", "storage.azure.accountname", "required"},
		{"no container", "    container: cache\n", "", "storage.azure.container", "required"},
		{"no credentials type", "    credentials:\n      type: shared_key\n", "", "storage.azure.credentials.type", "shared_key, client_secret"},
		{"bad credentials type", "type: shared_key", "type: sharedkey", "storage.azure.credentials.type", "shared_key, client_secret"},
		{"no account key", "    accountkey: " + secretPassword + "\n", "", "storage.azure.accountkey", "required with credentials type shared_key"},
		{"client secret incomplete", "      type: shared_key\n", "      type: client_secret\n      clientid: c\n      secret: " + secretPassword + "\n", "storage.azure.credentials.tenantid", "required"},
		{"quoted retries", "max_retries: 3", `max_retries: "3"`, "storage.azure.max_retries", "unquoted"},
		{"bad delay", "retry_delay: 200ms", "retry_delay: 200", "storage.azure.retry_delay", "duration"},
		{"quoted skipverify", "    container: cache\n", "    container: cache\n    skipverify: \"true\"\n", "storage.azure.skipverify", "unquoted"},
		{"bad service url", "http://127.0.0.1:10000/devstoreaccount1", "127.0.0.1:10000", "storage.azure.serviceurl", "invalid URL"},
		{"connection string", "    container: cache\n", "    container: cache\n    connectionstring: AccountKey=" + secretPassword + "\n", "storage.azure.connectionstring", "ignores it"},
		{"key not a string", "accountkey: " + secretPassword, "accountkey: [" + secretPassword + "]", "storage.azure.accountkey", "a string"},
		{"no state directory", "  statedirectory: /var/lib/proxy\n", "", "proxy.statedirectory", "required with storage.azure"},
		{"relative hosted root", "proxy:\n", "hosted: {rootdirectory: hosted}\nproxy:\n", "hosted.rootdirectory", "key prefix"},
		{"beside gcs", "storage:\n", "storage:\n  gcs: {bucket: b}\n", "storage", "both gcs and azure"},
	})
}
