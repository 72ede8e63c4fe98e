package main

// Tests of the truth itself: hand-written audit events (what kube-apiserver logs for a
// crash-looping pod, a graceful delete held by a finalizer, and a node) must give the
// transitions DESIGN.md's vocabulary says, at the times it says.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

func at(sec int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)) }

type logBuilder struct {
	buf bytes.Buffer
	rv  int
}

// add appends one ResponseComplete event for a write at second sec that returned obj.
func (l *logBuilder) add(verb, resource, sub string, sec int, obj runtime.Object) {
	l.rv++
	ref := &auditv1.ObjectReference{Resource: resource, Subresource: sub, Namespace: "ns"}
	ev := auditv1.Event{
		Stage:          auditv1.StageResponseComplete,
		Verb:           verb,
		ObjectRef:      ref,
		ResponseStatus: &metav1.Status{Code: 200},
		StageTimestamp: metav1.NewMicroTime(t0.Add(time.Duration(sec)*time.Second + 300*time.Millisecond)),
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		o.ResourceVersion = fmt.Sprint(l.rv)
		ref.Name = o.Name
		raw, _ := json.Marshal(o)
		ev.ResponseObject = &runtime.Unknown{Raw: raw}
	case *corev1.Node:
		o.TypeMeta = metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}
		o.ResourceVersion = fmt.Sprint(l.rv)
		ref.Name, ref.Namespace = o.Name, ""
		raw, _ := json.Marshal(o)
		ev.ResponseObject = &runtime.Unknown{Raw: raw}
	case *metav1.Status:
		ref.Name = o.Message
		o.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		raw, _ := json.Marshal(o)
		ev.ResponseObject = &runtime.Unknown{Raw: raw}
	}
	line, _ := json.Marshal(ev)
	l.buf.Write(append(line, '\n'))
}

func transitions(t *testing.T, log []byte) []string {
	t.Helper()
	ws, err := readWrites(bytes.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker()
	for _, w := range ws {
		tr.apply(w)
	}
	var out []string
	for _, x := range tr.out {
		s := fmt.Sprintf("%s %s @%d", x.Name, x.Kind, (x.AtMs-t0.UnixMilli())/1000)
		if x.Container != "" {
			s += " " + x.Container
		}
		if x.Reason != "" {
			s += " " + x.Reason
		}
		if x.ExitCode != nil {
			s += fmt.Sprintf(" exit=%d", *x.ExitCode)
		}
		if x.Timing == "observed" {
			s += " (observed)"
		}
		out = append(out, s)
	}
	return out
}

func cond(typ corev1.PodConditionType, ok bool, sec int) corev1.PodCondition {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	return corev1.PodCondition{Type: typ, Status: s, LastTransitionTime: at(sec)}
}

func TestACrashLoopGivesEachRunOnceAndTheWaitingReason(t *testing.T) {
	var l logBuilder
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", CreationTimestamp: at(0)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
	p.Status.Phase = corev1.PodPending
	l.add("create", "pods", "", 0, p.DeepCopy())
	l.add("create", "pods", "binding", 1, &metav1.Status{Message: "p"}) // answered with a Status
	p.Spec.NodeName = "n1"
	p.Status.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true, 1), cond(corev1.PodReady, false, 2)}
	p.Status.StartTime = &metav1.Time{Time: at(2).Time}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
	l.add("patch", "pods", "status", 2, p.DeepCopy())
	// Runs at 4 (the pull took 2 s: started is the container's startedAt, not startTime).
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions[1] = cond(corev1.PodReady, true, 4)
	p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "app", ContainerID: "c://1", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(4)}}}
	l.add("patch", "pods", "status", 4, p.DeepCopy())
	run1 := &corev1.ContainerStateTerminated{ContainerID: "c://1", ExitCode: 1, Reason: "Error", StartedAt: at(4), FinishedAt: at(6)}
	p.Status.Conditions[1] = cond(corev1.PodReady, false, 6)
	p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "app", ContainerID: "c://1", State: corev1.ContainerState{Terminated: run1}}
	l.add("patch", "pods", "status", 6, p.DeepCopy())
	// Back-off: the same run is now lastState; it must not be reported again.
	p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "app", ContainerID: "c://1",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: run1}}
	l.add("patch", "pods", "status", 7, p.DeepCopy())
	p.Status.Conditions[1] = cond(corev1.PodReady, true, 8)
	p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "app", ContainerID: "c://2", Ready: true, RestartCount: 1,
		State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(8)}},
		LastTerminationState: corev1.ContainerState{Terminated: run1}}
	l.add("patch", "pods", "status", 8, p.DeepCopy())
	// A graceful delete (grace 30 s) at 10, the kubelet stops it at 11, a finalizer holds it,
	// its owner removes the finalizer at 13.
	gone := int64(30)
	p.DeletionTimestamp = &metav1.Time{Time: at(40).Time}
	p.DeletionGracePeriodSeconds = &gone
	p.Finalizers = []string{"x/hold"}
	l.add("delete", "pods", "", 10, p.DeepCopy())
	run2 := &corev1.ContainerStateTerminated{ContainerID: "c://2", ExitCode: 137, Reason: "OOMKilled", StartedAt: at(8), FinishedAt: at(11)}
	p.Status.Phase = corev1.PodFailed
	p.Status.Conditions[1] = cond(corev1.PodReady, false, 11)
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: run2}
	p.Status.ContainerStatuses[0].Ready = false
	l.add("patch", "pods", "status", 11, p.DeepCopy())
	zero := int64(0)
	p.DeletionGracePeriodSeconds = &zero
	l.add("delete", "pods", "", 12, p.DeepCopy()) // the kubelet's grace-0 delete: held
	p.Finalizers = nil
	l.add("patch", "pods", "", 13, p.DeepCopy()) // finalizer removed: gone

	got := transitions(t, l.buf.Bytes())
	want := []string{
		"p created @0",
		"p scheduled @1",
		"p started @4",
		"p ready @4",
		"p unready @6",
		"p container_terminated @6 app Error exit=1",
		"p container_waiting @7 app CrashLoopBackOff (observed)",
		"p ready @8",
		"p container_restarted @6 app",
		"p terminating @10",
		"p unready @11",
		"p container_terminated @11 app OOMKilled exit=137",
		"p failed @11",
		"p deleted @13 (observed)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestANodeIsAddedBecomesReadyIsCordonedAndDeleted(t *testing.T) {
	var l logBuilder
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "nu", CreationTimestamp: at(0)}}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: mustQ("4")}
	n.Status.Allocatable = n.Status.Capacity
	l.add("create", "nodes", "", 0, n.DeepCopy())
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: at(1)}}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: mustQ("4000m")} // the same quantity, written differently
	l.add("patch", "nodes", "status", 1, n.DeepCopy())
	n.Spec.Unschedulable = true
	l.add("patch", "nodes", "", 2, n.DeepCopy())
	n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: mustQ("3")}
	l.add("patch", "nodes", "status", 3, n.DeepCopy())
	l.add("delete", "nodes", "", 4, &metav1.Status{Message: "n1"})
	got := transitions(t, l.buf.Bytes())
	want := []string{
		"n1 added @0",
		"n1 ready @1",
		"n1 cordoned @2 (observed)",
		"n1 capacity_changed @3 (observed)",
		"n1 deleted @4 (observed)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestALineThatIsNotAnAuditEventIsAnError(t *testing.T) {
	_, err := readWrites(strings.NewReader("{\"kind\":\"Event\"}\nnot json\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2 is not an audit event") {
		t.Fatalf("want an error naming line 2, got %v", err)
	}
}

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
