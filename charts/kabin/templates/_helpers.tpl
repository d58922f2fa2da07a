{{/* Labels every object of the release carries. */}}
{{- define "kabin.labels" -}}
app.kubernetes.io/part-of: kabin
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kabin.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The webhooks' Service host name, which the serving certificate names. */}}
{{- define "kabin.webhookHost" -}}
{{ .Release.Name }}-operator.{{ .Release.Namespace }}.svc
{{- end }}

{{/* A settings map as environment variables: {{ include "kabin.settingsEnv" (list "KABIN_" .Values.operator.settings) }}.
Lists and maps are JSON (how pydantic-settings reads them); everything else a string. */}}
{{- define "kabin.settingsEnv" -}}
{{- $prefix := index . 0 }}
{{- range $name, $value := index . 1 }}
- name: {{ printf "%s%s" $prefix (upper $name) }}
  value: {{ if or (kindIs "slice" $value) (kindIs "map" $value) }}{{ toJson $value | quote }}{{ else }}{{ toString $value | quote }}{{ end }}
{{- end }}
{{- end }}

{{/* The pod security context shared by the operator's and the gateway's pods. */}}
{{- define "kabin.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "kabin.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  readOnlyRootFilesystem: true
{{- end }}
