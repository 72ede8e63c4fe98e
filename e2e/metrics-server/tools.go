//go:build tools

// Package tools records the command that ../controlplane/build.sh builds from
// this module (metrics-server), so that go.mod and go.sum keep its requirements.
// It is never compiled (build tag "tools").
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
