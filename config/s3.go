package config

import (
	"fmt"
	"strconv"
	"strings"
)

// s3MinChunkSize is the s3-aws driver's smallest chunksize (S3's smallest
// multipart part).
const s3MinChunkSize = 5 << 20

// S3Keys are the parameters distribution's s3-aws driver reads (its
// FromParameters in v3.1.2), by type. storage.s3 accepts these and no others,
// so that a misspelt key stops the start instead of being ignored.
var S3Keys = map[string]string{
	"accesskey":                   typeString,
	"secretkey":                   typeString,
	"region":                      typeString,
	"regionendpoint":              typeString,
	"bucket":                      typeString,
	"rootdirectory":               typeString,
	"keyid":                       typeString,
	"storageclass":                typeString,
	"useragent":                   typeString,
	"objectacl":                   typeString,
	"loglevel":                    typeString,
	"redirectendpoint":            typeString,
	"forcepathstyle":              typeBool,
	"encrypt":                     typeBool,
	"secure":                      typeBool,
	"skipverify":                  typeBool,
	"v4auth":                      typeBool,
	"usedualstack":                typeBool,
	"accelerate":                  typeBool,
	"usefipsendpoint":             typeBool,
	"chunksize":                   typeInt,
	"multipartcopychunksize":      typeInt,
	"multipartcopymaxconcurrency": typeInt,
	"multipartcopythresholdsize":  typeInt,
}

// validateS3 checks the s3 driver parameters: known keys of the right type,
// a bucket, a region unless an endpoint is given. The driver checks the rest
// when it opens.
func validateS3(p map[string]any) error {
	if err := checkParams("storage.s3", S3Keys, nil, p); err != nil {
		return err
	}
	if b, _ := p["bucket"].(string); b == "" {
		return newError("storage.s3.bucket", "", "required")
	}
	ep, _ := p["regionendpoint"].(string)
	if r, _ := p["region"].(string); r == "" && ep == "" {
		return newError("storage.s3.region", "", "required unless storage.s3.regionendpoint is set")
	}
	if ep != "" {
		if err := validateURL("storage.s3.regionendpoint", ep); err != nil {
			return err
		}
	}
	if root, _ := p["rootdirectory"].(string); root != "" && !strings.HasPrefix(root, "/") {
		return newError("storage.s3.rootdirectory", root, `must start with "/"`)
	}
	if v, ok := p["chunksize"]; ok && v != nil {
		if n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64); n < s3MinChunkSize {
			return newError("storage.s3.chunksize", fmt.Sprint(v), fmt.Sprintf("must be at least %d (5 MiB)", s3MinChunkSize))
		}
	}
	return nil
}
