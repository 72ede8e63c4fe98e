// Command audittruth turns a kube-apiserver audit log (JSON lines, written by
// `controlplane --cluster` at RequestResponse level for every write to pods and
// nodes) into the transitions that really happened, as JSON lines on stdout.
// It is the independent truth of kubetrail's cluster e2e test: it reads the
// objects the API server stored (each write's responseObject, decoded into the
// k8s.io/api types) and applies the rules of kubetrail's DESIGN.md vocabulary
// itself; it shares no code with the Rust recorder.
//
//	audittruth [--requests] AUDIT_LOG
//
// One line per transition:
//
//	{"subject":"pod","uid":..,"namespace":..,"name":..,"kind":"container_terminated",
//	 "container":"app","reason":"OOMKilled","exit_code":137,"at_ms":..,"timing":"status",
//	 "write_ms":..,"node":..}
//
// timing is "status" when at_ms is a time the object itself carries (a condition's
// lastTransitionTime, a container's startedAt/finishedAt, creationTimestamp,
// deletionTimestamp minus the grace period), and "observed" when Kubernetes keeps
// no time for it, in which case at_ms is the audit event's stageTimestamp (when the
// write completed). write_ms is always that stageTimestamp: a transition happened
// while a watcher was connected if its write did.
//
// With --requests it prints instead, per node, the sum of the effective requests
// (k8s.io/component-helpers/resource.PodRequests, the scheduler's own rule) of the
// pods bound to it and not in a terminal phase, as of the end of the log:
//
//	{"node":"kw-a","cpu_millis":350,"memory_bytes":402653184,"pods":["shop/web-1",..]}
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

func main() {
	requests := flag.Bool("requests", false, "print each node's requested sum over its bound, non-terminal pods at the end of the log, instead of transitions")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: audittruth [--requests] AUDIT_LOG")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "audittruth: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	writes, err := readWrites(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "audittruth: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	t := newTracker()
	for _, w := range writes {
		t.apply(w)
	}
	if *requests {
		for _, line := range t.nodeRequests() {
			_ = enc.Encode(line)
		}
		return
	}
	sort.SliceStable(t.out, func(i, j int) bool { return t.out[i].WriteMs < t.out[j].WriteMs })
	for _, tr := range t.out {
		_ = enc.Encode(tr)
	}
}

// write is one successful write to a pod or node, as the API server answered it.
type write struct {
	verb      string
	resource  string // "pods" or "nodes"
	sub       string // "", "status", "binding", ...
	namespace string
	name      string
	writeMs   int64 // stageTimestamp of ResponseComplete
	rv        uint64
	pod       *corev1.Pod
	node      *corev1.Node
	seq       int // position in the log, for stable ordering
}

// readWrites keeps the ResponseComplete events of successful writes, ordered by
// the resourceVersion of the object they returned (the order etcd applied them in;
// the log's own order is the order responses completed, which can differ).
func readWrites(r io.Reader) ([]write, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var ws []write
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("line %d is not an audit event: %v", line, err)
		}
		if ev.Stage != auditv1.StageResponseComplete || ev.ObjectRef == nil {
			continue
		}
		if ev.ResponseStatus == nil || ev.ResponseStatus.Code < 200 || ev.ResponseStatus.Code > 299 {
			continue
		}
		w := write{
			verb:      ev.Verb,
			resource:  ev.ObjectRef.Resource,
			sub:       ev.ObjectRef.Subresource,
			namespace: ev.ObjectRef.Namespace,
			name:      ev.ObjectRef.Name,
			writeMs:   ev.StageTimestamp.UnixMilli(),
			seq:       line,
		}
		if w.resource != "pods" && w.resource != "nodes" {
			continue
		}
		if ev.ResponseObject != nil {
			var meta struct {
				Kind string `json:"kind"`
			}
			_ = json.Unmarshal(ev.ResponseObject.Raw, &meta)
			switch meta.Kind {
			case "Pod":
				w.pod = &corev1.Pod{}
				if err := json.Unmarshal(ev.ResponseObject.Raw, w.pod); err != nil {
					return nil, fmt.Errorf("line %d: responseObject is not a Pod: %v", line, err)
				}
				w.rv, _ = strconv.ParseUint(w.pod.ResourceVersion, 10, 64)
				w.name = w.pod.Name
			case "Node":
				w.node = &corev1.Node{}
				if err := json.Unmarshal(ev.ResponseObject.Raw, w.node); err != nil {
					return nil, fmt.Errorf("line %d: responseObject is not a Node: %v", line, err)
				}
				w.rv, _ = strconv.ParseUint(w.node.ResourceVersion, 10, 64)
				w.name = w.node.Name
			}
		}
		ws = append(ws, w)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Writes that returned an object go by resourceVersion; the others (a binding,
	// a node delete answered with a Status) keep their place by log position relative
	// to the write just before them.
	var lastRV uint64
	for i := range ws {
		if ws[i].rv == 0 {
			ws[i].rv = lastRV
		} else {
			lastRV = ws[i].rv
		}
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].rv < ws[j].rv })
	return ws, nil
}

// Transition is one output line.
type Transition struct {
	Subject   string `json:"subject"`
	UID       string `json:"uid"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	Kind      string `json:"kind"`
	Container string `json:"container,omitempty"`
	Reason    string `json:"reason,omitempty"`
	ExitCode  *int32 `json:"exit_code,omitempty"`
	AtMs      int64  `json:"at_ms"`
	Timing    string `json:"timing"`
	WriteMs   int64  `json:"write_ms"`
}

type podTrack struct {
	last *corev1.Pod
	// terminated container runs already reported, keyed by containerID (or, for a
	// run without one, by name, startedAt and finishedAt).
	runs map[string]bool
}

type tracker struct {
	pods     map[string]*podTrack // by uid
	podByKey map[string]string    // namespace/name -> uid of the live pod
	nodes    map[string]*corev1.Node
	nodeUID  map[string]string // name -> uid of the live node
	gone     map[string]bool   // uids already deleted
	out      []Transition
}

func newTracker() *tracker {
	return &tracker{
		pods: map[string]*podTrack{}, podByKey: map[string]string{},
		nodes: map[string]*corev1.Node{}, nodeUID: map[string]string{}, gone: map[string]bool{},
	}
}

func (t *tracker) apply(w write) {
	switch {
	case w.pod != nil:
		t.applyPod(w)
	case w.node != nil:
		t.applyNode(w)
	case w.resource == "nodes" && w.sub == "" && w.verb == "delete":
		// A node delete answers with a Status: the node is gone.
		if uid, ok := t.nodeUID[w.name]; ok && !t.gone[uid] {
			t.gone[uid] = true
			delete(t.nodeUID, w.name)
			t.emit(Transition{Subject: "node", UID: uid, Name: w.name, Kind: "deleted", AtMs: w.writeMs, Timing: "observed", WriteMs: w.writeMs})
		}
	}
}

func ms(t interface{ UnixMilli() int64 }) int64 { return t.UnixMilli() }

func (t *tracker) emit(tr Transition) { t.out = append(t.out, tr) }

func condition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	if p == nil {
		return nil
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	c := condition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func statusByName(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func (t *tracker) applyPod(w write) {
	cur := w.pod
	uid := string(cur.UID)
	if t.gone[uid] {
		return
	}
	tr := t.pods[uid]
	if tr == nil {
		tr = &podTrack{runs: map[string]bool{}}
		t.pods[uid] = tr
		t.podByKey[cur.Namespace+"/"+cur.Name] = uid
	}
	prev := tr.last
	base := Transition{Subject: "pod", UID: uid, Namespace: cur.Namespace, Name: cur.Name, Node: cur.Spec.NodeName, WriteMs: w.writeMs}
	status := func(kind string, at int64) Transition {
		x := base
		x.Kind, x.AtMs, x.Timing = kind, at, "status"
		return x
	}
	observed := func(kind string) Transition {
		x := base
		x.Kind, x.AtMs, x.Timing = kind, w.writeMs, "observed"
		return x
	}

	if prev == nil {
		t.emit(status("created", ms(cur.CreationTimestamp)))
	}
	// scheduled: the pod gets a node.
	if cur.Spec.NodeName != "" && (prev == nil || prev.Spec.NodeName == "") {
		if c := condition(cur, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			t.emit(status("scheduled", ms(c.LastTransitionTime)))
		} else if prev == nil {
			t.emit(status("scheduled", ms(cur.CreationTimestamp))) // bound at creation
		} else {
			t.emit(observed("scheduled"))
		}
	}
	// started: phase becomes Running; the first app container's running.startedAt.
	prevPhase := corev1.PodPending
	if prev != nil {
		prevPhase = prev.Status.Phase
	}
	if cur.Status.Phase == corev1.PodRunning && prevPhase != corev1.PodRunning {
		at := int64(-1)
		for _, c := range cur.Spec.Containers {
			if s := statusByName(cur.Status.ContainerStatuses, c.Name); s != nil && s.State.Running != nil {
				at = ms(s.State.Running.StartedAt)
				break
			}
		}
		if at < 0 && cur.Status.StartTime != nil {
			at = ms(*cur.Status.StartTime)
		}
		if at < 0 {
			t.emit(observed("started"))
		} else {
			t.emit(status("started", at))
		}
	}
	// ready / unready: the Ready condition flips.
	if podReady(cur) != podReady(prev) {
		kind := "unready"
		if podReady(cur) {
			kind = "ready"
		}
		if c := condition(cur, corev1.PodReady); c != nil && !c.LastTransitionTime.IsZero() {
			t.emit(status(kind, ms(c.LastTransitionTime)))
		} else {
			t.emit(observed(kind))
		}
	}
	// Containers: init containers first, then app containers.
	var prevInit, prevApp []corev1.ContainerStatus
	if prev != nil {
		prevInit, prevApp = prev.Status.InitContainerStatuses, prev.Status.ContainerStatuses
	}
	t.containers(tr, base, w, prevInit, cur.Status.InitContainerStatuses)
	t.containers(tr, base, w, prevApp, cur.Status.ContainerStatuses)

	// succeeded / failed: the phase becomes terminal.
	terminal := func(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }
	if terminal(cur.Status.Phase) && !terminal(prevPhase) {
		kind := "succeeded"
		if cur.Status.Phase == corev1.PodFailed {
			kind = "failed"
		}
		latest := int64(-1)
		for _, list := range [][]corev1.ContainerStatus{cur.Status.InitContainerStatuses, cur.Status.ContainerStatuses} {
			for _, s := range list {
				if s.State.Terminated != nil && ms(s.State.Terminated.FinishedAt) > latest {
					latest = ms(s.State.Terminated.FinishedAt)
				}
			}
		}
		var x Transition
		if latest >= 0 {
			x = status(kind, latest)
		} else {
			x = observed(kind)
		}
		x.Reason = cur.Status.Reason
		t.emit(x)
	}
	// terminating: deletionTimestamp appears; the delete request's time is
	// deletionTimestamp minus the grace period.
	if cur.DeletionTimestamp != nil && (prev == nil || prev.DeletionTimestamp == nil) {
		grace := int64(0)
		if cur.DeletionGracePeriodSeconds != nil {
			grace = *cur.DeletionGracePeriodSeconds
		}
		t.emit(status("terminating", ms(*cur.DeletionTimestamp)-grace*1000))
	}
	tr.last = cur
	// deleted: the API server removed the object with this write.
	if cur.DeletionTimestamp != nil && len(cur.Finalizers) == 0 &&
		(cur.DeletionGracePeriodSeconds == nil || *cur.DeletionGracePeriodSeconds == 0) {
		t.emit(observed("deleted"))
		t.gone[uid] = true
		delete(t.podByKey, cur.Namespace+"/"+cur.Name)
	}
}

// containers reports, for one list of container statuses, each run's end (once
// per containerID, at its finishedAt), each restart (at the finishedAt of the run
// that ended) and each new waiting reason (observed).
func (t *tracker) containers(tr *podTrack, base Transition, w write, prev, cur []corev1.ContainerStatus) {
	for _, s := range cur {
		p := statusByName(prev, s.Name)
		for _, term := range []*corev1.ContainerStateTerminated{s.LastTerminationState.Terminated, s.State.Terminated} {
			if term == nil {
				continue
			}
			key := term.ContainerID
			if key == "" {
				key = fmt.Sprintf("%s/%d/%d", s.Name, ms(term.StartedAt), ms(term.FinishedAt))
			}
			if tr.runs[key] {
				continue
			}
			tr.runs[key] = true
			x := base
			x.Kind, x.Container, x.Reason, x.AtMs, x.Timing = "container_terminated", s.Name, term.Reason, ms(term.FinishedAt), "status"
			code := term.ExitCode
			x.ExitCode = &code
			t.emit(x)
		}
		prevRestarts := int32(0)
		if p != nil {
			prevRestarts = p.RestartCount
		}
		if s.RestartCount > prevRestarts {
			x := base
			x.Kind, x.Container = "container_restarted", s.Name
			if lt := s.LastTerminationState.Terminated; lt != nil {
				x.AtMs, x.Timing = ms(lt.FinishedAt), "status"
			} else {
				x.AtMs, x.Timing = w.writeMs, "observed"
			}
			t.emit(x)
		}
		if wt := s.State.Waiting; wt != nil && wt.Reason != "" && wt.Reason != "ContainerCreating" && wt.Reason != "PodInitializing" {
			if p == nil || p.State.Waiting == nil || p.State.Waiting.Reason != wt.Reason {
				x := base
				x.Kind, x.Container, x.Reason, x.AtMs, x.Timing = "container_waiting", s.Name, wt.Reason, w.writeMs, "observed"
				t.emit(x)
			}
		}
	}
}

func nodeReady(n *corev1.Node) (bool, *corev1.NodeCondition) {
	if n == nil {
		return false, nil
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			c := &n.Status.Conditions[i]
			return c.Status == corev1.ConditionTrue, c
		}
	}
	return false, nil
}

// sameResources compares cpu, memory and pods, the figures kubetrail keeps.
func sameResources(a, b corev1.ResourceList) bool {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		qa, qb := a[r], b[r]
		if qa.Cmp(qb) != 0 {
			return false
		}
	}
	return true
}

func (t *tracker) applyNode(w write) {
	cur := w.node
	uid := string(cur.UID)
	if t.gone[uid] {
		return
	}
	prev := t.nodes[uid]
	t.nodes[uid] = cur
	t.nodeUID[cur.Name] = uid
	base := Transition{Subject: "node", UID: uid, Name: cur.Name, WriteMs: w.writeMs}
	if prev == nil {
		x := base
		x.Kind, x.AtMs, x.Timing = "added", ms(cur.CreationTimestamp), "status"
		t.emit(x)
	}
	wasReady, _ := nodeReady(prev)
	isReady, c := nodeReady(cur)
	if isReady != wasReady {
		x := base
		x.Kind = "not_ready"
		if isReady {
			x.Kind = "ready"
		}
		if c != nil && !c.LastTransitionTime.IsZero() {
			x.AtMs, x.Timing = ms(c.LastTransitionTime), "status"
		} else {
			x.AtMs, x.Timing = w.writeMs, "observed"
		}
		t.emit(x)
	}
	wasCordoned := prev != nil && prev.Spec.Unschedulable
	if cur.Spec.Unschedulable != wasCordoned {
		x := base
		x.Kind, x.AtMs, x.Timing = "uncordoned", w.writeMs, "observed"
		if cur.Spec.Unschedulable {
			x.Kind = "cordoned"
		}
		t.emit(x)
	}
	if prev != nil && (!sameResources(prev.Status.Capacity, cur.Status.Capacity) || !sameResources(prev.Status.Allocatable, cur.Status.Allocatable)) {
		x := base
		x.Kind, x.AtMs, x.Timing = "capacity_changed", w.writeMs, "observed"
		t.emit(x)
	}
}

// NodeRequests is one --requests line.
type NodeRequests struct {
	Node        string   `json:"node"`
	CPUMillis   int64    `json:"cpu_millis"`
	MemoryBytes int64    `json:"memory_bytes"`
	Pods        []string `json:"pods"`
}

func (t *tracker) nodeRequests() []NodeRequests {
	by := map[string]*NodeRequests{}
	for name := range t.nodeUID {
		by[name] = &NodeRequests{Node: name, Pods: []string{}}
	}
	for uid, tr := range t.pods {
		p := tr.last
		if t.gone[uid] || p == nil || p.Spec.NodeName == "" ||
			p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		n := by[p.Spec.NodeName]
		if n == nil {
			n = &NodeRequests{Node: p.Spec.NodeName, Pods: []string{}}
			by[p.Spec.NodeName] = n
		}
		req := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		n.CPUMillis += req.Cpu().MilliValue()
		n.MemoryBytes += req.Memory().Value()
		n.Pods = append(n.Pods, p.Namespace+"/"+p.Name)
	}
	var out []NodeRequests
	for _, n := range by {
		sort.Strings(n.Pods)
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
