{{- define "portcullis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portcullis.labels" -}}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "portcullis.secretName" -}}
{{- printf "%s-secrets" (include "portcullis.fullname" .) -}}
{{- end -}}

{{/* The volume is needed for SQLite or a generated CA. */}}
{{- define "portcullis.needsVolume" -}}
{{- if or (not (or .Values.database.url .Values.database.existingSecret)) (not .Values.ca.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Fail early on values that cannot work. */}}
{{- define "portcullis.validate" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "replicaCount > 1 needs PostgreSQL: set database.url or database.existingSecret (SQLite serves one replica)" -}}
{{- end -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "replicaCount > 1 needs Redis: set redis.url or redis.existingSecret, so changes reach agents held by any replica" -}}
{{- end -}}
{{- if not .Values.ca.existingSecret -}}
{{- fail "replicaCount > 1 needs one agent CA for every replica: set ca.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.oidc.issuer (not .Values.oidc.clientID) -}}
{{- fail "oidc.issuer needs oidc.clientID" -}}
{{- end -}}
{{- if and .Values.oidc.issuer (not .Values.publicURL) -}}
{{- fail "oidc.issuer needs publicURL: the OIDC redirect URL is <publicURL>/auth/callback" -}}
{{- end -}}
{{- end -}}

{{/* An env var read from the chart's Secret or an existing one; "" when unset. */}}
{{- define "portcullis.secretEnv" -}}
{{- $ := index . 0 -}}{{- $name := index . 1 -}}{{- $v := index . 2 -}}{{- $key := index . 3 -}}
{{- if or $v.existingSecret (index $v $key) -}}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret | default (include "portcullis.secretName" $) }}
      key: {{ ternary $v.existingSecretKey (index . 4) (ne $v.existingSecret "") }}
{{- end -}}
{{- end -}}
