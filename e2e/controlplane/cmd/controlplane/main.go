// Command controlplane starts a real etcd and kube-apiserver on 127.0.0.1 for
// kubetrail's end-to-end tests, prints one JSON line when the API server is
// ready, and tears everything down when told to stop.
//
//	controlplane --bin-dir DIR [--work-dir DIR] [--kubeconfig-out PATH] [--watch-cache=false]
//	controlplane --cluster --kwok-config FILE ...   (adds scheduler, controller-manager, kwok, audit log; see cluster.go)
//
// It stops (killing both children and removing the work dir and the kubeconfig)
// on SIGTERM, SIGINT or SIGHUP, or when its stdin is a pipe and that pipe
// closes, so a test process that dies does not leave orphans behind. The
// children also get PR_SET_PDEATHSIG=SIGKILL, so they die even if the launcher
// is SIGKILLed.
//
// While running it reads commands, one per line, from that stdin pipe, and
// answers each with one JSON line on stdout ({"command":..,"ok":..,...}):
//
//	stop-apiserver     stop kube-apiserver (etcd keeps running); open watches end
//	start-apiserver    start it again on the same port with the same flags, wait for /readyz
//	restart-apiserver  both (SIGUSR1 does the same, without a reply line)
//
// Only the Go standard library is used.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// k8sVersion is set by build.sh (-X main.k8sVersion=...). The JSON line reports
// what the running API server says on /version, and falls back to this.
var k8sVersion = "unknown"

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	binDir         string
	workDir        string
	kubeconfigOut  string
	watchCache     bool
	readyTimeout   time.Duration
	stdinWatch     string
	keepWorkDir    bool
	verbose        bool
	apiserverArgs  stringList
	etcdArgs       stringList
	startupRetries int
	cluster        bool
	kwokConfig     stringList
	metricsServer  bool
	clusterArgs    []string // kube-apiserver flags that cluster mode adds (audit, tolerations)
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "", "directory holding the kube-apiserver and etcd binaries (build.sh prints it); default: the launcher's own directory")
	flag.StringVar(&o.workDir, "work-dir", "", "directory for etcd data, certificates, keys and logs; must be absent or empty; removed on exit (default: a new temp dir)")
	flag.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "where to write the admin kubeconfig (default: WORK_DIR/kubeconfig)")
	flag.BoolVar(&o.watchCache, "watch-cache", true, "kube-apiserver --watch-cache; false sends every watch to etcd, so compacting etcd makes old resourceVersions answer 410 Gone")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 120*time.Second, "how long to wait for etcd /health and kube-apiserver /readyz")
	flag.StringVar(&o.stdinWatch, "exit-on-stdin-close", "auto", "stop when stdin reaches EOF: true, false, or auto (only when stdin is a pipe or socket, so </dev/null does not stop it at once)")
	flag.BoolVar(&o.keepWorkDir, "keep-work-dir", false, "do not remove the work dir on exit (to read the logs)")
	flag.BoolVar(&o.verbose, "verbose", false, "copy etcd and kube-apiserver output to stderr as well as to the log files")
	flag.Var(&o.apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=4 (repeatable; later flags win)")
	flag.Var(&o.etcdArgs, "etcd-arg", "extra etcd flag (repeatable)")
	flag.IntVar(&o.startupRetries, "startup-attempts", 3, "attempts (with fresh ports) if a child exits during startup, e.g. because a port was taken")
	flag.BoolVar(&o.cluster, "cluster", false, "also start kube-scheduler, kube-controller-manager and kwok, and write kube-apiserver's audit log (WORK_DIR/audit.log)")
	flag.Var(&o.kwokConfig, "kwok-config", "with --cluster: kwok config file holding the Stages that play the kubelets (e.g. e2e/kwok/stages.yaml); repeatable (e.g. add e2e/kwok/metrics.yaml)")
	flag.BoolVar(&o.metricsServer, "metrics-server", false, "with --cluster: also run metrics-server behind the aggregator (APIService v1beta1.metrics.k8s.io), scraping kwok's emulated resource metrics")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		os.Exit(1)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "controlplane: "+format+"\n", a...)
	os.Exit(2)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "controlplane: "+format+"\n", a...)
}

// ---------------------------------------------------------------------------

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // valid after done is closed
}

func startChild(name, bin string, args []string, logPath string, verbose bool) (*child, error) {
	// Append: a restarted kube-apiserver keeps its earlier output.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	var out io.Writer = logFile
	if verbose {
		out = io.MultiWriter(logFile, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's Ctrl-C reaches only the launcher, which stops them in order
		Pdeathsig: syscall.SIGKILL, // and if the launcher is killed outright, the kernel kills them
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the process group.
func (c *child) stop(grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------

func freePorts(n int) ([]int, error) {
	// Hold all listeners open until every port is chosen so they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeServiceAccountKeys writes an RSA key pair for signing and verifying
// service-account tokens.
func writeServiceAccountKeys(dir string) (keyPath, pubPath string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writePEM(keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600); err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	return keyPath, pubPath, writePEM(pubPath, "PUBLIC KEY", pub, 0o644)
}

// writeServingCerts makes a CA and a serving certificate for 127.0.0.1 and
// localhost signed by it (ECDSA P-256), so clients can verify the server
// (including rustls/webpki, which wants a real CA and a non-CA leaf with the
// serverAuth EKU).
func writeServingCerts(dir string) (caPath, certPath, keyPath string, caPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetrail-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:              []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return
	}
	caPath, certPath, keyPath = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err = os.WriteFile(caPath, caPEM, 0o644); err != nil {
		return
	}
	if err = writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return
	}
	err = writePEM(keyPath, "EC PRIVATE KEY", keyDER, 0o600)
	return
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func kubeconfig(server string, caPEM []byte, token string) []byte {
	// certificate-authority-data is base64 of the PEM; JSON is valid YAML, so
	// let encoding/json do the quoting and base64 ([]byte marshals as base64).
	type cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data"`
	}
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "kubetrail-e2e",
		"clusters":        []any{map[string]any{"name": "kubetrail-e2e", "cluster": cluster{server, caPEM}}},
		"users":           []any{map[string]any{"name": "admin", "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "kubetrail-e2e", "context": map[string]any{
			"cluster": "kubetrail-e2e", "user": "admin", "namespace": "default"}}},
		"preferences": map[string]any{},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n')
}

// ---------------------------------------------------------------------------

type controlPlane struct {
	etcd, apiserver *child
	etcdURL         string
	server          string
	version         string

	// what is needed to (re)start the API server
	o         options
	f         files
	apiArgs   []string
	tlsClient *http.Client
}

// apiserverGrace is how long kube-apiserver gets after SIGTERM before SIGKILL.
// It stops listening at once, but an open watch keeps its graceful shutdown
// waiting for much longer (measured: >15 s), which tests do not want to wait for.
const apiserverGrace = 3 * time.Second

func (cp *controlPlane) stop() {
	if cp == nil {
		return
	}
	cp.apiserver.stop(apiserverGrace)
	cp.etcd.stop(5 * time.Second)
}

// waitHTTP polls url until check(status, body) is true, the child exits, ctx ends, or the deadline passes.
func waitHTTP(ctx context.Context, client *http.Client, url, token string, c *child, deadline time.Time, check func(int, []byte) bool) error {
	var last string
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.exited() {
			return fmt.Errorf("%s exited during startup (%v); last log lines:\n%s", c.name, c.err, tail(c.logPath, 40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if check(resp.StatusCode, body) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s in time; last answer: %s; last log lines:\n%s", c.name, url, last, tail(c.logPath, 40))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type files struct {
	dir, etcdData, certDir, caPath, certPath, keyPath, saKey, saPub, tokens string
	caPEM                                                                   []byte
	token                                                                   string
}

func startOnce(ctx context.Context, o options, f files) (*controlPlane, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	deadline := time.Now().Add(o.readyTimeout)
	cp := &controlPlane{
		etcdURL: fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		server:  fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		o:       o,
		f:       f,
	}
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)

	_ = os.RemoveAll(f.etcdData)
	etcdArgs := append([]string{
		"--name=default",
		"--data-dir=" + f.etcdData,
		"--listen-client-urls=" + cp.etcdURL,
		"--advertise-client-urls=" + cp.etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync",
		"--auto-compaction-retention=0", // no automatic compaction: tests compact explicitly
		"--log-level=warn",
	}, o.etcdArgs...)
	cp.etcd, err = startChild("etcd", filepath.Join(o.binDir, "etcd"), etcdArgs, filepath.Join(f.dir, "etcd.log"), o.verbose)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if err := waitHTTP(ctx, plain, cp.etcdURL+"/health", "", cp.etcd, deadline, func(code int, body []byte) bool {
		return code == 200 && bytes.Contains(body, []byte(`"health":"true"`))
	}); err != nil {
		cp.stop()
		return nil, err
	}

	cp.apiArgs = append([]string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + f.certDir,
		"--tls-cert-file=" + f.certPath,
		"--tls-private-key-file=" + f.keyPath,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=" + cp.server + "/",
		"--service-account-key-file=" + f.saPub,
		"--service-account-signing-key-file=" + f.saKey,
		"--authorization-mode=RBAC",
		"--token-auth-file=" + f.tokens,
		// Without a controller-manager nobody creates the "default" ServiceAccount,
		// and the ServiceAccount admission plugin would then reject every pod.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		// The API server compacts etcd every 5 minutes by default; switch that off
		// so that 410 Gone happens only when a test compacts etcd itself.
		"--etcd-compaction-interval=0",
		"--watch-cache=" + strconv.FormatBool(o.watchCache),
		"--profiling=false",
	}, append(append([]string{}, o.clusterArgs...), o.apiserverArgs...)...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.caPEM)
	cp.tlsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := cp.startAPIServer(ctx, deadline); err != nil {
		cp.stop()
		return nil, err
	}
	cp.version = k8sVersion
	req, _ := http.NewRequest(http.MethodGet, cp.server+"/version", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	if resp, err := cp.tlsClient.Do(req); err == nil {
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		if json.NewDecoder(resp.Body).Decode(&v) == nil && v.GitVersion != "" {
			cp.version = v.GitVersion
		}
		resp.Body.Close()
	}
	return cp, nil
}

// startAPIServer starts kube-apiserver (again: same port, same flags, same etcd)
// and waits for /readyz.
func (cp *controlPlane) startAPIServer(ctx context.Context, deadline time.Time) error {
	var err error
	cp.apiserver, err = startChild("kube-apiserver", filepath.Join(cp.o.binDir, "kube-apiserver"), cp.apiArgs,
		filepath.Join(cp.f.dir, "kube-apiserver.log"), cp.o.verbose)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, cp.tlsClient, cp.server+"/readyz", cp.f.token, cp.apiserver, deadline, func(code int, body []byte) bool {
		return code == 200
	}); err != nil {
		cp.apiserver.stop(5 * time.Second)
		return err
	}
	return nil
}

func stdinIsWatchable() bool {
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	return m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0
}

var stdoutMu sync.Mutex

func printJSON(v any) {
	line, _ := json.Marshal(v)
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

func run(o options) (err error) {
	if o.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.binDir = filepath.Dir(exe)
	}
	need := []string{"etcd", "kube-apiserver"}
	if o.cluster {
		need = append(need, clusterBinaries...)
		if len(o.kwokConfig) == 0 {
			return fmt.Errorf("--cluster needs --kwok-config FILE (the kwok Stages, e.g. e2e/kwok/stages.yaml)")
		}
		for i, c := range o.kwokConfig {
			if o.kwokConfig[i], err = filepath.Abs(c); err != nil {
				return err
			}
			if _, err := os.Stat(o.kwokConfig[i]); err != nil {
				return fmt.Errorf("--kwok-config: %v", err)
			}
		}
		if o.metricsServer {
			need = append(need, "metrics-server")
		}
	} else if len(o.kwokConfig) != 0 || o.metricsServer {
		return fmt.Errorf("--kwok-config and --metrics-server are only used with --cluster")
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return fmt.Errorf("%s not found in --bin-dir %s (run e2e/controlplane/build.sh): %v", b, o.binDir, err)
		}
	}
	if o.binDir, err = filepath.Abs(o.binDir); err != nil {
		return err
	}

	// Work dir: create it, or accept an existing empty one; never wipe someone's files.
	if o.workDir == "" {
		if o.workDir, err = os.MkdirTemp("", "kubetrail-controlplane-"); err != nil {
			return err
		}
	} else {
		if o.workDir, err = filepath.Abs(o.workDir); err != nil {
			return err
		}
		entries, rerr := os.ReadDir(o.workDir)
		switch {
		case errors.Is(rerr, os.ErrNotExist):
			if err := os.MkdirAll(o.workDir, 0o755); err != nil {
				return err
			}
		case rerr != nil:
			return rerr
		case len(entries) > 0:
			return fmt.Errorf("--work-dir %s is not empty; it would be removed on exit, so give an absent or empty directory", o.workDir)
		}
	}
	defer func() {
		if o.keepWorkDir {
			logf("keeping work dir %s", o.workDir)
			return
		}
		if rerr := os.RemoveAll(o.workDir); rerr != nil {
			logf("removing work dir: %v", rerr)
		}
	}()
	if o.kubeconfigOut == "" {
		o.kubeconfigOut = filepath.Join(o.workDir, "kubeconfig")
	}
	if o.kubeconfigOut, err = filepath.Abs(o.kubeconfigOut); err != nil {
		return err
	}

	f := files{
		dir:      o.workDir,
		etcdData: filepath.Join(o.workDir, "etcd"),
		certDir:  filepath.Join(o.workDir, "certs"),
		tokens:   filepath.Join(o.workDir, "tokens.csv"),
	}
	if err := os.MkdirAll(f.certDir, 0o755); err != nil {
		return err
	}
	if f.caPath, f.certPath, f.keyPath, f.caPEM, err = writeServingCerts(f.certDir); err != nil {
		return fmt.Errorf("serving certificates: %w", err)
	}
	if f.saKey, f.saPub, err = writeServiceAccountKeys(o.workDir); err != nil {
		return fmt.Errorf("service-account keys: %w", err)
	}
	if f.token, err = randomToken(); err != nil {
		return err
	}
	// token,user,uid,"group1,group2"
	if err := os.WriteFile(f.tokens, []byte(f.token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	var auditLog string
	if o.cluster {
		if o.clusterArgs, auditLog, err = clusterAPIServerArgs(o.workDir); err != nil {
			return fmt.Errorf("audit policy: %w", err)
		}
		if o.metricsServer {
			proxyArgs, err := frontProxyArgs(f.certDir)
			if err != nil {
				return fmt.Errorf("front-proxy certificates: %w", err)
			}
			o.clusterArgs = append(o.clusterArgs, proxyArgs...)
		}
	}

	// Stop requests: signals, or EOF on stdin. Commands: lines on stdin, SIGUSR1.
	stopCh := make(chan string, 4)
	cmdCh := make(chan string, 16)
	sigCh := make(chan os.Signal, 4)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	go func() {
		for s := range sigCh {
			if s == syscall.SIGUSR1 {
				cmdCh <- "sigusr1"
				continue
			}
			stopCh <- "signal " + s.String()
		}
	}()
	watchStdin := o.stdinWatch == "true" || (o.stdinWatch == "auto" && stdinIsWatchable())
	if watchStdin {
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); line != "" {
					cmdCh <- line
				}
			}
			stopCh <- "stdin closed"
		}()
	}

	type result struct {
		cp  *controlPlane
		err error
	}
	resCh := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var lastErr error
		for attempt := 1; attempt <= max(1, o.startupRetries); attempt++ {
			if ctx.Err() != nil {
				break
			}
			cp, err := startOnce(ctx, o, f)
			if err == nil {
				resCh <- result{cp: cp}
				return
			}
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			if attempt < o.startupRetries {
				logf("startup attempt %d failed, retrying with new ports: %v", attempt, err)
			}
		}
		resCh <- result{err: lastErr}
	}()

	var cp *controlPlane
	select {
	case r := <-resCh:
		if r.err != nil {
			return r.err
		}
		cp = r.cp
	case why := <-stopCh:
		cancel()
		logf("stopping during startup (%s)", why)
		// The startup goroutine notices the cancel within a poll interval and
		// stops the children it started.
		if r := <-resCh; r.cp != nil {
			r.cp.stop()
		}
		return nil
	}
	defer cp.stop()

	if err := os.MkdirAll(filepath.Dir(o.kubeconfigOut), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.kubeconfigOut, kubeconfig(cp.server, f.caPEM, f.token), 0o600); err != nil {
		return err
	}
	defer os.Remove(o.kubeconfigOut)

	// Cluster mode: the scheduler, controller-manager and kwok use the admin
	// kubeconfig just written. They stop before the API server (defers run last-in first-out).
	var comps *components
	if o.cluster {
		var cerr error
		comps, cerr = startComponents(ctx, o, f, o.kubeconfigOut, cp)
		defer comps.stop()
		if cerr != nil {
			return cerr
		}
		comps.auditLog = auditLog
	}
	compDied := make(chan *child, 4)
	for _, ch := range comps.all() {
		go func(ch *child) { <-ch.done; compDied <- ch }(ch)
	}

	line := map[string]any{
		"kubeconfig":     o.kubeconfigOut,
		"server":         cp.server,
		"etcd":           cp.etcdURL,
		"version":        cp.version,
		"token":          f.token,
		"ca":             f.caPath,
		"work_dir":       o.workDir,
		"watch_cache":    o.watchCache,
		"pid":            os.Getpid(),
		"apiserver_pid":  cp.apiserver.cmd.Process.Pid,
		"etcd_pid":       cp.etcd.cmd.Process.Pid,
		"apiserver_log":  cp.apiserver.logPath,
		"etcd_log":       cp.etcd.logPath,
		"stdin_commands": watchStdin,
	}
	if comps != nil {
		comps.describe(line)
	}
	printJSON(line)
	logf("ready: %s (etcd %s); stop with SIGTERM/SIGINT%s", cp.server, cp.etcdURL, map[bool]string{true: " or by closing stdin", false: ""}[watchStdin])

	apiserverUp := true
	for {
		var apiDone <-chan struct{}
		if apiserverUp {
			apiDone = cp.apiserver.done
		}
		select {
		case why := <-stopCh:
			logf("stopping (%s)", why)
			return nil
		case cmd := <-cmdCh:
			reply := map[string]any{"command": cmd, "ok": true}
			var cerr error
			switch cmd {
			case "stop-apiserver":
				if apiserverUp {
					cp.apiserver.stop(apiserverGrace)
					apiserverUp = false
				}
			case "start-apiserver", "restart-apiserver", "sigusr1":
				if cmd != "start-apiserver" && apiserverUp {
					cp.apiserver.stop(apiserverGrace)
					apiserverUp = false
				}
				if !apiserverUp {
					// A stop request during the restart is handled after it (at most ready-timeout).
					if cerr = cp.startAPIServer(context.Background(), time.Now().Add(o.readyTimeout)); cerr == nil {
						apiserverUp = true
					}
				}
			default:
				cerr = fmt.Errorf("unknown command %q (known: stop-apiserver, start-apiserver, restart-apiserver)", cmd)
			}
			if cerr != nil {
				reply["ok"], reply["error"] = false, cerr.Error()
			}
			if apiserverUp {
				reply["apiserver_pid"] = cp.apiserver.cmd.Process.Pid
			}
			reply["apiserver_up"] = apiserverUp
			logf("command %q: ok=%v", cmd, cerr == nil)
			if cmd != "sigusr1" {
				printJSON(reply)
			}
		case <-apiDone:
			return fmt.Errorf("kube-apiserver exited unexpectedly (%v); last log lines:\n%s", cp.apiserver.err, tail(cp.apiserver.logPath, 40))
		case ch := <-compDied:
			return fmt.Errorf("%s exited unexpectedly (%v); last log lines:\n%s", ch.name, ch.err, tail(ch.logPath, 40))
		case <-cp.etcd.done:
			return fmt.Errorf("etcd exited unexpectedly (%v); last log lines:\n%s", cp.etcd.err, tail(cp.etcd.logPath, 40))
		}
	}
}
