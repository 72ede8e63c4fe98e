//go:build tools

// Package tools records the command that ../controlplane/build.sh builds from
// this module (kwok), so that go.mod and go.sum keep its requirements. It is
// never compiled (build tag "tools").
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
