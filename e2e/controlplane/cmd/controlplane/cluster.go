// Cluster mode (--cluster): besides etcd and kube-apiserver, the launcher starts
// kube-scheduler, kube-controller-manager and kwok (fake kubelets driven by the
// Stages in --kwok-config), and turns on kube-apiserver's audit log. This file
// owns the flags, files and processes that only cluster mode has.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// auditPolicy records every write to pods and nodes (and their subresources) at
// RequestResponse level, so the log holds each object as the API server stored
// it after the write: the input of cmd/audittruth. Everything else is not logged.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: RequestResponse
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - group: ""
    resources: ["pods", "pods/status", "pods/binding", "pods/eviction", "pods/resize", "nodes", "nodes/status"]
- level: None
`

// Short timings so that node failure, taints and taint-based eviction happen
// within seconds instead of minutes. kwok renews each node lease every quarter
// of its duration (1 s here), well inside the grace period.
const (
	nodeLeaseDurationSeconds = 4
	nodeMonitorGracePeriod   = "10s"
	tolerationSeconds        = 5
)

// clusterControllers are the kube-controller-manager controllers cluster mode
// runs: workload controllers, garbage collection, service accounts and the node
// lifecycle (NotReady, taints) with taint-based eviction.
var clusterControllers = []string{
	"serviceaccount-token-controller", "serviceaccount-controller",
	"replicaset-controller", "deployment-controller", "statefulset-controller",
	"daemonset-controller", "job-controller", "cronjob-controller",
	"garbage-collector-controller", "pod-garbage-collector-controller",
	"node-lifecycle-controller", "taint-eviction-controller", "namespace-controller",
	"ttl-after-finished-controller",
}

// clusterBinaries are needed in --bin-dir in cluster mode, on top of etcd and kube-apiserver.
var clusterBinaries = []string{"kube-scheduler", "kube-controller-manager", "kwok"}

// components are the processes cluster mode adds, in start order.
type components struct {
	scheduler, kcm, kwok *child
	metricsServer        *child // only with --metrics-server
	auditLog             string
	ports                map[string]int
}

// clusterAPIServerArgs writes the audit policy and returns the kube-apiserver
// flags that cluster mode adds.
func clusterAPIServerArgs(dir string) (args []string, auditLog string, err error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, "", err
	}
	auditLog = filepath.Join(dir, "audit.log")
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + auditLog,
		"--audit-log-format=json",
		// blocking: each event is written before the response is sent, so the log
		// is complete for every write a client has seen answered.
		"--audit-log-mode=blocking",
		"--audit-log-maxsize=0", // never rotate
		"--default-not-ready-toleration-seconds=" + strconv.Itoa(tolerationSeconds),
		"--default-unreachable-toleration-seconds=" + strconv.Itoa(tolerationSeconds),
	}, auditLog, nil
}

// startComponents starts kube-scheduler, kube-controller-manager and kwok with
// the admin kubeconfig and waits until each answers /healthz.
func startComponents(ctx context.Context, o options, f files, kubeconfigPath string, cp *controlPlane) (*components, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &components{ports: map[string]int{"scheduler": ports[0], "controller_manager": ports[1], "kwok": ports[2]}}
	deadline := time.Now().Add(o.readyTimeout)
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	kc := "--kubeconfig=" + kubeconfigPath
	delegated := []string{kc, "--authentication-kubeconfig=" + kubeconfigPath, "--authorization-kubeconfig=" + kubeconfigPath}

	schedArgs := append(append([]string{}, delegated...),
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[0]),
		"--cert-dir="+filepath.Join(f.dir, "scheduler-certs"),
		"--leader-elect=false",
	)
	if c.scheduler, err = startChild("kube-scheduler", filepath.Join(o.binDir, "kube-scheduler"), schedArgs,
		filepath.Join(f.dir, "kube-scheduler.log"), o.verbose); err != nil {
		return c, err
	}
	kcmArgs := append(append([]string{}, delegated...),
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[1]),
		"--cert-dir="+filepath.Join(f.dir, "kcm-certs"),
		"--leader-elect=false",
		"--controllers="+strings.Join(clusterControllers, ","),
		"--service-account-private-key-file="+f.saKey,
		"--root-ca-file="+f.caPath,
		"--use-service-account-credentials=false",
		"--node-monitor-period=1s",
		"--node-monitor-grace-period="+nodeMonitorGracePeriod,
		"--node-startup-grace-period=20s",
		// Evict from one node at a time, every 2 s: the test fails one node of several.
		"--node-eviction-rate=0.5",
		"--concurrent-gc-syncs=5",
	)
	if c.kcm, err = startChild("kube-controller-manager", filepath.Join(o.binDir, "kube-controller-manager"), kcmArgs,
		filepath.Join(f.dir, "kube-controller-manager.log"), o.verbose); err != nil {
		return c, err
	}
	kwokArgs := []string{kc}
	for _, c := range o.kwokConfig {
		kwokArgs = append(kwokArgs, "--config="+c)
	}
	nodeIP := "10.255.0.1"
	if o.metricsServer {
		nodeIP = kwokNodeIP
	}
	kwokArgs = append(kwokArgs,
		"--manage-all-nodes=false",
		// Only nodes the test marks as fake get a kwok kubelet.
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds="+strconv.Itoa(nodeLeaseDurationSeconds),
		"--server-address=127.0.0.1:"+strconv.Itoa(ports[2]),
		"--cidr=10.244.0.0/16",
		"--node-ip="+nodeIP,
	)
	if c.kwok, err = startChild("kwok", filepath.Join(o.binDir, "kwok"), kwokArgs,
		filepath.Join(f.dir, "kwok.log"), o.verbose); err != nil {
		return c, err
	}

	for _, w := range []struct {
		ch  *child
		url string
	}{
		{c.scheduler, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[0])},
		{c.kcm, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[1])},
		{c.kwok, fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[2])},
	} {
		if err := waitHTTP(ctx, insecure, w.url, "", w.ch, deadline, func(code int, _ []byte) bool { return code == 200 }); err != nil {
			return c, err
		}
	}
	if o.metricsServer {
		if c.metricsServer, c.ports["metrics_server"], err = startMetricsServer(ctx, o, f, kubeconfigPath, cp.server, ports[2], cp.tlsClient); err != nil {
			return c, err
		}
	}
	return c, nil
}

// stop stops the components in reverse start order.
func (c *components) stop() {
	if c == nil {
		return
	}
	c.metricsServer.stop(3 * time.Second) // a nil child (no --metrics-server) is a no-op
	c.kwok.stop(3 * time.Second)
	c.kcm.stop(3 * time.Second)
	c.scheduler.stop(3 * time.Second)
}

// all returns the component processes (none when c is nil).
func (c *components) all() []*child {
	if c == nil {
		return nil
	}
	all := []*child{c.scheduler, c.kcm, c.kwok}
	if c.metricsServer != nil {
		all = append(all, c.metricsServer)
	}
	return all
}

// describe adds the cluster-mode keys to the ready line.
func (c *components) describe(line map[string]any) {
	line["cluster"] = true
	line["audit_log"] = c.auditLog
	for name, p := range c.ports {
		line[name+"_port"] = p
	}
	for _, ch := range c.all() {
		key := map[string]string{"kube-scheduler": "scheduler", "kube-controller-manager": "controller_manager", "kwok": "kwok", "metrics-server": "metrics_server"}[ch.name]
		line[key+"_pid"] = ch.cmd.Process.Pid
		line[key+"_log"] = ch.logPath
	}
}
