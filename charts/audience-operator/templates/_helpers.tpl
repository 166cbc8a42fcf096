{{/* Chart name. */}}
{{- define "audience-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources (also the leader-election Lease). Truncated to 63
characters (DNS-1123 label).
*/}}
{{- define "audience-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart label value. */}}
{{- define "audience-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "audience-operator.labels" -}}
helm.sh/chart: {{ include "audience-operator.chart" . }}
{{ include "audience-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: audience-operator
{{- end }}

{{/* Labels selecting the operator pods. */}}
{{- define "audience-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "audience-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "audience-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "audience-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the leader-election Lease (and of its Role). */}}
{{- define "audience-operator.leaseName" -}}
{{- include "audience-operator.fullname" . }}
{{- end }}

{{/* The operator image. */}}
{{- define "audience-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator does with its own resources, Secrets and Events, wherever it watches
(a ClusterRole, or a Role in each watched namespace).
*/}}
{{- define "audience-operator.watchRules" -}}
- apiGroups: ["sync.audience-operator.io"]
  resources: ["audiencesyncs", "segmentsyncs", "ordersyncs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["sync.audience-operator.io"]
  resources: ["audiencesyncs/status", "segmentsyncs/status", "ordersyncs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# The activity log: one ConfigMap per sync, written by server-side apply, deleted when turned off.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if and .Values.webhooks.enabled .Values.sharding.enabled }}
# Webhooks with sharding: a delivery that reaches a pod not owning the sync is handed to the
# owner by patching the sync's webhook-hint annotation (never its spec).
- apiGroups: ["sync.audience-operator.io"]
  resources: ["audiencesyncs", "segmentsyncs", "ordersyncs"]
  verbs: ["patch"]
{{- else if and .Values.webhooks.enabled .Values.webhooks.publicUrl }}
# Webhook registration only: the finalizer that removes a sync's vendor subscriptions when it
# is deleted, and the annotation recording the URL they point at (a patch of metadata; the
# operator never changes a spec). AudienceSyncs and OrderSyncs register.
- apiGroups: ["sync.audience-operator.io"]
  resources: ["audiencesyncs", "ordersyncs"]
  verbs: ["patch"]
{{- end }}
{{- end }}
