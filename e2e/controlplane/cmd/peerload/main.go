// peerload fills a real API server with a cluster the size of BENCHMARKS.md's peer table:
// NODES Ready nodes and PODS Running pods bound to them, spread over namespaces, each pod
// created and then moved to Running through the status subresource (a create resets status
// to Pending, as the kubelet's first update would follow). The pods look like a Deployment's:
// labels, an owner reference, requests and limits, a sidecar init container in every fourth,
// conditions and container statuses as a kubelet reports them. It prints one JSON line with
// the counts and how long loading took.
//
//	peerload --kubeconfig KC [--pods 100000] [--nodes 5000] [--namespaces 20] [--workers 48]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server (required)")
	pods := flag.Int("pods", 100000, "pods to create")
	nodes := flag.Int("nodes", 5000, "nodes to create")
	namespaces := flag.Int("namespaces", 20, "namespaces the pods are spread over")
	workers := flag.Int("workers", 48, "requests in flight")
	flag.Parse()
	if *kubeconfig == "" || flag.NArg() > 0 || *pods < 0 || *nodes < 1 || *namespaces < 1 || *workers < 1 {
		fail(2, "usage: peerload --kubeconfig KC [--pods N>=0] [--nodes N>=1] [--namespaces N>=1] [--workers N>=1]")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(1, "reading %s: %v", *kubeconfig, err)
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.QPS, cfg.Burst = 100000, 100000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(1, "client: %v", err)
	}
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < *namespaces; i++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i)}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			fail(1, "namespace %s: %v", ns.Name, err)
		}
	}
	parallel(*nodes, *workers, "nodes", func(i int) error {
		_, err := client.CoreV1().Nodes().Create(ctx, node(i), metav1.CreateOptions{})
		return err
	})
	nodesDone := time.Since(start)
	parallel(*pods, *workers, "pods", func(i int) error {
		p := pod(i, *namespaces, *nodes)
		created, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		created.Status = p.Status
		_, err = client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
	out, _ := json.Marshal(map[string]any{
		"pods": *pods, "nodes": *nodes, "namespaces": *namespaces,
		"nodes_s": nodesDone.Seconds(), "total_s": time.Since(start).Seconds(),
	})
	fmt.Println(string(out))
}

// parallel runs f(0..n) on `workers` goroutines and stops the program at the first error.
func parallel(n, workers int, what string, f func(int) error) {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					fail(1, "%s %d: %v", what, i, err)
				}
				if d := done.Add(1); d%10000 == 0 {
					fmt.Fprintf(os.Stderr, "peerload: %d %s\n", d, what)
				}
			}
		}()
	}
	wg.Wait()
}

func nsName(i int) string   { return fmt.Sprintf("team-%02d", i) }
func nodeName(i int) string { return fmt.Sprintf("node-%05d", i) }

var loadedAt = metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))

func node(i int) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	allocatable := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("15800m"),
		corev1.ResourceMemory: resource.MustParse("62Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: nodeName(i),
			Labels: map[string]string{
				"kubernetes.io/hostname":           nodeName(i),
				"kubernetes.io/os":                 "linux",
				"topology.kubernetes.io/zone":      fmt.Sprintf("zone-%d", i%3),
				"node.kubernetes.io/instance-type": "m5.4xlarge",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubelet is posting ready status", LastHeartbeatTime: loadedAt, LastTransitionTime: loadedAt,
			}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.35.4", OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
}

func pod(i, namespaces, nodes int) *corev1.Pod {
	app := fmt.Sprintf("svc-%d", i%500)
	hash := fmt.Sprintf("%08x", (i%500)*2654435761%0xffffffff)
	name := fmt.Sprintf("%s-%s-%06d", app, hash[:6], i)
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	spec := corev1.PodSpec{
		NodeName: nodeName(i % nodes),
		Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/" + app + ":1.4.2", Resources: res,
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}},
		RestartPolicy: corev1.RestartPolicyAlways,
	}
	always := corev1.ContainerRestartPolicyAlways
	if i%4 == 0 {
		spec.InitContainers = []corev1.Container{{
			Name: "proxy", Image: "registry.example/proxy:2.0", Resources: res, RestartPolicy: &always,
		}}
	}
	started := metav1.NewTime(loadedAt.Add(time.Duration(i%3600) * time.Second))
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: started}
	}
	running := func(c corev1.Container) corev1.ContainerStatus {
		ready := true
		return corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image + "@sha256:0123456789abcdef", Ready: true, Started: &ready,
			ContainerID: fmt.Sprintf("containerd://%s-%d", c.Name, i),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}
	}
	status := corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond(corev1.PodScheduled), cond(corev1.PodInitialized), cond(corev1.ContainersReady), cond(corev1.PodReady)},
		HostIP:     fmt.Sprintf("10.1.%d.%d", (i%nodes)/250, (i%nodes)%250),
		PodIP:      fmt.Sprintf("10.2.%d.%d", i/250%250, i%250),
		StartTime:  &started,
		QOSClass:   corev1.PodQOSBurstable,
	}
	for _, c := range spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, running(c))
	}
	for _, c := range spec.InitContainers {
		status.InitContainerStatuses = append(status.InitContainerStatuses, running(c))
	}
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: nsName(i % namespaces),
			Labels: map[string]string{"app": app, "pod-template-hash": hash[:6]},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + hash[:6], Controller: &yes,
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i%500)),
			}},
		},
		Spec:   spec,
		Status: status,
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peerload: "+format+"\n", args...)
	os.Exit(code)
}
