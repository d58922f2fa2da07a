//go:build tools

// Package tools pins promtool, which checks the alert rules against the metrics.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
