{{- define "gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gateway.labels" -}}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gateway.secretName" -}}
{{- printf "%s-secrets" (include "gateway.fullname" .) -}}
{{- end -}}

{{/* Fail early on values that cannot work. */}}
{{- define "gateway.validate" -}}
{{- if not .Values.controlPlane -}}
{{- fail "controlPlane is required: the host:port of the control plane's agent listener" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (or .Values.redis.url .Values.redis.existingSecret)) -}}
{{- fail "replicaCount > 1 needs redis.url or redis.existingSecret: replicas share rate limits and MCP client sessions through Redis" -}}
{{- end -}}
{{- if and .Values.enrollment.token .Values.enrollment.existingSecret -}}
{{- fail "set enrollment.token or enrollment.existingSecret, not both" -}}
{{- end -}}
{{- end -}}
