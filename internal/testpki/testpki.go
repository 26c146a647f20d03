// Package testpki makes a self-signed CA certificate for tests: one that servers
// on localhost and 127.0.0.1 can present, written as PEM for CA-file options.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a self-signed certificate valid for an hour around now.
type CA struct {
	Cert       tls.Certificate // for a test server's tls.Config
	PEMPath    string          // the certificate as a PEM file in a test temp dir
	KeyPEMPath string          // its private key as a PEM file, for servers configured with files
}

// NewCA creates a CA certificate for localhost and 127.0.0.1.
func NewCA(t testing.TB) CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := CA{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		PEMPath: filepath.Join(dir, "ca.pem"), KeyPEMPath: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{ca.PEMPath: {Type: "CERTIFICATE", Bytes: der}, ca.KeyPEMPath: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// Pool is a certificate pool holding the CA, for clients that must trust it.
func (c CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	cert, err := x509.ParseCertificate(c.Cert.Certificate[0])
	if err == nil {
		pool.AddCert(cert)
	}
	return pool
}
