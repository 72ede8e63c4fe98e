// Metrics-server mode (--cluster --metrics-server): the launcher also runs the real
// metrics-server (sigs.k8s.io/metrics-server, built from ../metrics-server) behind
// kube-apiserver's aggregator, scraping the resource metrics that kwok emulates for
// its nodes. This file owns what only that mode adds: the front-proxy certificates
// and kube-apiserver flags the aggregator needs to call an extension API server, the
// metrics-server process, and its Service and APIService (written with the admin
// token through plain REST, as the launcher uses only the Go standard library).
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// metricsResolution is metrics-server's scrape period. 10 s is the smallest it accepts
// (its options validation rejects less).
const metricsResolution = "10s"

// frontProxyClientName is the CN of the client certificate the aggregator presents to
// extension API servers; --requestheader-allowed-names admits only it.
const frontProxyClientName = "front-proxy-client"

// frontProxyArgs writes a front-proxy CA and the aggregator's client certificate into
// certDir and returns the kube-apiserver flags that use them. Without them the
// aggregator proxies requests without a client certificate, metrics-server cannot
// authenticate the user in the X-Remote-User header, and every request is anonymous.
func frontProxyArgs(certDir string) ([]string, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetrail-e2e-front-proxy-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: frontProxyClientName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPath := filepath.Join(certDir, "front-proxy-ca.crt")
	certPath := filepath.Join(certDir, "front-proxy-client.crt")
	keyPath := filepath.Join(certDir, "front-proxy-client.key")
	if err := writePEM(caPath, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return nil, err
	}
	return []string{
		"--requestheader-client-ca-file=" + caPath,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + certPath,
		"--proxy-client-key-file=" + keyPath,
	}, nil
}

// kwokNodeIP is kwok's --node-ip in metrics-server mode. The node stage writes NodeIP
// as each node's InternalIP, and metrics-server dials that address: it must be where
// kwok's server listens (127.0.0.1), not the unroutable 10.255.0.1 of cluster mode.
const kwokNodeIP = "127.0.0.1"

// startMetricsServer starts metrics-server on a free port, registers it as the
// APIService v1beta1.metrics.k8s.io, and waits until it answers /livez. It does not
// wait for the APIService to be Available or for a first scrape: there may be no
// nodes yet, and the test waits for what it needs.
func startMetricsServer(ctx context.Context, o options, f files, kubeconfigPath, server string, kwokPort int, tlsClient *http.Client) (*child, int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, 0, err
	}
	port := ports[0]
	args := []string{
		"--kubeconfig=" + kubeconfigPath,
		"--authentication-kubeconfig=" + kubeconfigPath,
		"--authorization-kubeconfig=" + kubeconfigPath,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		// A self-signed serving certificate; the APIService skips TLS verification.
		"--cert-dir=" + filepath.Join(f.dir, "metrics-server-certs"),
		// kwok serves every node's endpoints on one plain-HTTP address (--server-address);
		// each node's annotation metrics.k8s.io/resource-metrics-path picks its path there.
		"--kubelet-port=" + strconv.Itoa(kwokPort),
		"--deprecated-kubelet-completely-insecure",
		"--kubelet-preferred-address-types=InternalIP",
		"--metric-resolution=" + metricsResolution,
		// It must stay under 90% of the resolution (its options validation); its default
		// (10 s) does not with a 10 s resolution.
		"--kubelet-request-timeout=5s",
	}
	ch, err := startChild("metrics-server", filepath.Join(o.binDir, "metrics-server"), args,
		filepath.Join(f.dir, "metrics-server.log"), o.verbose)
	if err != nil {
		return nil, 0, err
	}
	// An ExternalName Service naming 127.0.0.1: the aggregator resolves it to that host and
	// the APIService's port, so no Endpoints and no kube-proxy are needed.
	svc := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"metrics-server","namespace":"kube-system"},
"spec":{"type":"ExternalName","externalName":"127.0.0.1","ports":[{"name":"https","port":` + strconv.Itoa(port) + `,"protocol":"TCP"}]}}`
	apisvc := `{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.metrics.k8s.io"},
"spec":{"group":"metrics.k8s.io","version":"v1beta1","service":{"name":"metrics-server","namespace":"kube-system","port":` + strconv.Itoa(port) + `},
"insecureSkipTLSVerify":true,"groupPriorityMinimum":100,"versionPriority":100}}`
	for _, obj := range []struct{ path, body string }{
		{"/api/v1/namespaces/kube-system/services", svc},
		{"/apis/apiregistration.k8s.io/v1/apiservices", apisvc},
	} {
		if err := post(ctx, tlsClient, server+obj.path, f.token, obj.body); err != nil {
			return ch, port, err
		}
	}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitHTTP(ctx, insecure, fmt.Sprintf("https://127.0.0.1:%d/livez", port), "", ch,
		time.Now().Add(o.readyTimeout), func(code int, _ []byte) bool { return code == 200 }); err != nil {
		return ch, port, err
	}
	return ch, port, nil
}

// post creates one object as the admin and fails unless the API server answers 201.
func post(ctx context.Context, client *http.Client, url, token, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	return nil
}
