// peerinformer is the peer kubetrail is compared with in BENCHMARKS.md: a client-go
// SharedInformer of pods and nodes, exactly as a controller builds one (the informer factory,
// client-go's defaults, protobuf as client-go's typed clients negotiate it with a real API
// server). It starts both informers, waits until both have synced, waits two more seconds (as
// bench_record does for kubetrail), and prints one JSON line: the time to synced, the objects
// held, the resident set (VmRSS, and the peak VmHWM) and the CPU seconds spent so far.
//
//	peerinformer --kubeconfig KC [--content-type protobuf|json] [--settle 2s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server (required)")
	contentType := flag.String("content-type", "protobuf", "wire format: protobuf (what client-go's typed clients use against a real API server) or json (all the simulator serves)")
	settle := flag.Duration("settle", 2*time.Second, "how long to wait after synced before reading the resident set")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up when not synced by then")
	flag.Parse()
	if *kubeconfig == "" || flag.NArg() > 0 {
		fail(2, "usage: peerinformer --kubeconfig KC [--content-type protobuf|json] [--settle 2s]")
	}
	accept := map[string]string{
		"protobuf": "application/vnd.kubernetes.protobuf,application/json",
		"json":     "application/json",
	}[*contentType]
	if accept == "" {
		fail(2, "--content-type %q: use protobuf or json", *contentType)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(1, "reading %s: %v", *kubeconfig, err)
	}
	cfg.AcceptContentTypes = accept
	cfg.ContentType = "application/json"
	if *contentType == "protobuf" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}
	// Only two requests are made (a list+watch per kind); client-side throttling would only
	// slow the paging of a relist.
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(1, "client: %v", err)
	}
	start := time.Now()
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	nodes := factory.Core().V1().Nodes().Informer()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, nodes.HasSynced) {
		fail(1, "not synced within %v", *timeout)
	}
	synced := time.Since(start)
	time.Sleep(*settle)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	out, _ := json.Marshal(map[string]any{
		"synced_s":     synced.Seconds(),
		"pods":         len(pods.GetStore().ListKeys()),
		"nodes":        len(nodes.GetStore().ListKeys()),
		"rss_mb":       statusMB("VmRSS:"),
		"peak_mb":      statusMB("VmHWM:"),
		"cpu_s":        cpu,
		"content_type": *contentType,
	})
	fmt.Println(string(out))
	cancel()
	factory.Shutdown()
}

// statusMB reads a kB field of /proc/self/status, in MB (MiB).
func statusMB(field string) float64 {
	text, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(text), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peerinformer: "+format+"\n", args...)
	os.Exit(code)
}
