//go:build tools

// Package tools pins Kueue's manager in this wrapper module.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
