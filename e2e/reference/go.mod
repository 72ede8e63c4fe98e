// A separate Go module: the upstream Kubernetes resource math (component-helpers) and quantity
// parser (apimachinery) behind a JSON-lines helper, the truth for tests/reference_resources.rs.
// The versions match k8s.io/kubernetes v1.35.4 in ../controlplane. See README.md.
module kubetrail.dev/e2e/reference

go 1.25.0

godebug default=go1.25

require (
	gopkg.in/inf.v0 v0.9.1
	k8s.io/api v0.35.4
	k8s.io/apimachinery v0.35.4
	k8s.io/component-helpers v0.35.4
)

require (
	github.com/fxamacker/cbor/v2 v2.9.0 // indirect
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.3-0.20250322232337-35a7c28c31ee // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.yaml.in/yaml/v2 v2.4.3 // indirect
	golang.org/x/net v0.47.0 // indirect
	golang.org/x/text v0.31.0 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	k8s.io/kube-openapi v0.0.0-20250910181357-589584f1c912 // indirect
	k8s.io/utils v0.0.0-20251002143259-bc988d571ff4 // indirect
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730 // indirect
	sigs.k8s.io/randfill v1.0.0 // indirect
	sigs.k8s.io/structured-merge-diff/v6 v6.3.0 // indirect
)
