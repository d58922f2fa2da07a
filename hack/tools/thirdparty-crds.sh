#!/usr/bin/env bash
# Prints the paths of the CRDs the chart's optional objects need, from the Go module
# proxy (the projects' own module archives carry them): cert-manager's Certificate and
# Issuer, the Prometheus Operator's ServiceMonitor and PrometheusRule. Tests install
# them on the local control plane so that a server-side dry run checks those objects
# against their real schemas.
set -euo pipefail
CERT_MANAGER=v1.21.2
PROMETHEUS_OPERATOR=v0.85.0
dir() { go mod download -json "$1" | awk -F'"' '$2 == "Dir" {print $4}'; }
cm=$(dir "github.com/cert-manager/cert-manager@$CERT_MANAGER")
po=$(dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR")
echo "$cm/deploy/crds/cert-manager.io_certificates.yaml"
echo "$cm/deploy/crds/cert-manager.io_issuers.yaml"
echo "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
echo "$po/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
