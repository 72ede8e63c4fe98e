// Command reference answers questions about Kubernetes resource math with the upstream Go code,
// so that kubetrail's Rust reimplementation can be checked against it (tests/reference_resources.rs).
//
// It reads one JSON object per line on stdin and writes one JSON object per line on stdout, in
// the same order. Each request carries an "id" that the answer repeats, and exactly one of:
//
//	{"id":1,"pod":{...a core/v1 Pod...}}
//	    -> PodRequests and PodLimits from k8s.io/component-helpers/resource, once with plain
//	       options and once with the options the kube-scheduler v1.35 uses (UseStatusResources,
//	       pod-level resources on, in-place pod-level resize off), as cpu millicores and memory
//	       bytes (MilliValue / Value of the summed quantities).
//	{"id":2,"quantity":"1.5Gi"}
//	    -> whether resource.ParseQuantity accepts it; if so MilliValue(), Value(), String(), and
//	       the exact ceil(q*1000) and ceil(q) as decimal strings (these may not fit an int64,
//	       where MilliValue and Value overflow).
//	{"id":3,"millis":1500}
//	    -> resource.NewMilliQuantity(1500, DecimalSI).String(), how Kubernetes prints a cpu amount.
//
// A line that is not such a request gets {"id":...,"error":"..."}; the helper never exits early.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"gopkg.in/inf.v0"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

type request struct {
	ID       json.RawMessage `json:"id"`
	Pod      *v1.Pod         `json:"pod"`
	Quantity *string         `json:"quantity"`
	Millis   *int64          `json:"millis"`
}

type amounts struct {
	CPUMillis   int64 `json:"cpu_millis"`
	MemoryBytes int64 `json:"memory_bytes"`
}

type podAnswer struct {
	Requests      amounts `json:"requests"`
	Limits        amounts `json:"limits"`
	SchedRequests amounts `json:"sched_requests"`
	SchedLimits   amounts `json:"sched_limits"`
}

type quantityAnswer struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	MilliValue int64  `json:"milli_value"`
	Value      int64  `json:"value"`
	String     string `json:"string,omitempty"`
	MilliExact string `json:"milli_exact,omitempty"`
	ValueExact string `json:"value_exact,omitempty"`
	Negative   bool   `json:"negative"`
}

func toAmounts(list v1.ResourceList) amounts {
	cpu := list[v1.ResourceCPU]
	memory := list[v1.ResourceMemory]
	return amounts{CPUMillis: cpu.MilliValue(), MemoryBytes: memory.Value()}
}

// schedulerOptions are the options kube-scheduler v1.35.4 passes (pkg/scheduler/framework
// types.go CalculateResource): InPlacePodVerticalScaling is GA and locked on, PodLevelResources
// is on by default, InPlacePodLevelResourcesVerticalScaling is alpha and off by default.
var schedulerOptions = resourcehelper.PodResourcesOptions{
	UseStatusResources: true,
	InPlacePodLevelResourcesVerticalScalingEnabled: false,
	SkipPodLevelResources:                          false,
}

func answerPod(pod *v1.Pod) podAnswer {
	plain := resourcehelper.PodResourcesOptions{}
	// Each call gets its own copy: PodRequests adds the overhead into a Quantity that can share
	// its big decimal with the pod's own (a pod-level "2.8Gi" is one), and so changes the pod.
	return podAnswer{
		Requests:      toAmounts(resourcehelper.PodRequests(pod.DeepCopy(), plain)),
		Limits:        toAmounts(resourcehelper.PodLimits(pod.DeepCopy(), plain)),
		SchedRequests: toAmounts(resourcehelper.PodRequests(pod.DeepCopy(), schedulerOptions)),
		SchedLimits:   toAmounts(resourcehelper.PodLimits(pod.DeepCopy(), schedulerOptions)),
	}
}

// ceilString returns ceil(d * 10^shift) as an exact decimal integer string.
func ceilString(d *inf.Dec, shift int32) string {
	scaled := new(inf.Dec).Set(d)
	scaled.SetScale(scaled.Scale() - inf.Scale(shift))
	scaled.Round(scaled, 0, inf.RoundCeil)
	return scaled.UnscaledBig().String()
}

func answerQuantity(s string) quantityAnswer {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return quantityAnswer{OK: false, Error: err.Error()}
	}
	dec := q.AsDec()
	return quantityAnswer{
		OK:         true,
		MilliValue: q.MilliValue(),
		Value:      q.Value(),
		String:     q.String(),
		MilliExact: ceilString(dec, 3),
		ValueExact: ceilString(dec, 0),
		Negative:   q.Sign() < 0,
	}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var answer any
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			answer = map[string]any{"id": req.ID, "error": fmt.Sprintf("bad request line: %v", err)}
		} else {
			switch {
			case req.Pod != nil:
				answer = struct {
					ID json.RawMessage `json:"id"`
					podAnswer
				}{req.ID, answerPod(req.Pod)}
			case req.Quantity != nil:
				answer = struct {
					ID json.RawMessage `json:"id"`
					quantityAnswer
				}{req.ID, answerQuantity(*req.Quantity)}
			case req.Millis != nil:
				answer = map[string]any{"id": req.ID, "string": resource.NewMilliQuantity(*req.Millis, resource.DecimalSI).String()}
			default:
				answer = map[string]any{"id": req.ID, "error": "request has none of pod, quantity, millis"}
			}
		}
		if err := enc.Encode(answer); err != nil {
			fmt.Fprintf(os.Stderr, "reference: cannot write answer: %v\n", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "reference: cannot read stdin: %v\n", err)
		os.Exit(1)
	}
}
