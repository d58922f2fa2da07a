//go:build tools

// Package tools pins local-path-provisioner's command in this wrapper module.
package tools

import _ "github.com/rancher/local-path-provisioner"
