{{/*
The operator pod template, shared by the Deployment (leader election) and the StatefulSet
(sharding). Indented for `nindent 4` under `spec.template`.
*/}}
{{- define "audience-operator.podTemplate" -}}
metadata:
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  labels:
    {{- include "audience-operator.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "audience-operator.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: operator
      image: {{ include "audience-operator.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --metrics-addr=0.0.0.0:{{ .Values.metrics.port }}
        - --concurrency={{ .Values.concurrency }}
        {{- with .Values.runRecordsBudget }}
        - --run-records-budget={{ . }}
        {{- end }}
        {{- if .Values.sharding.enabled }}
        # One Lease per shard; each pod's home shard is the ordinal of its name (POD_NAME).
        - --shards={{ .Values.replicaCount }}
        - --lease-name={{ include "audience-operator.leaseName" . }}
        - --lease-namespace={{ .Release.Namespace }}
        {{- else if .Values.leaderElection.enabled }}
        - --lease-name={{ include "audience-operator.leaseName" . }}
        - --lease-namespace={{ .Release.Namespace }}
        {{- else }}
        - --no-leader-election
        {{- end }}
        {{- range .Values.watchNamespaces }}
        - --namespace={{ . }}
        {{- end }}
        {{- if eq .Values.logFormat "json" }}
        - --log-json
        {{- end }}
        {{- with .Values.sandboxURL }}
        - --sandbox={{ . }}
        {{- end }}
        {{- range .Values.allowedEndpointHosts }}
        - --allow-endpoint-host={{ . }}
        {{- end }}
        {{- if .Values.webhooks.enabled }}
        - --webhook-addr=0.0.0.0:{{ .Values.webhooks.port }}
        {{- with .Values.webhooks.publicUrl }}
        - --webhook-public-url={{ . }}
        {{- end }}
        {{- end }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: RUST_LOG
          value: {{ .Values.logLevel | quote }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- if .Values.webhooks.enabled }}
        - name: webhooks
          containerPort: {{ .Values.webhooks.port }}
          protocol: TCP
        {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        initialDelaySeconds: 2
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 3
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    # The root filesystem is read-only; a small scratch directory for anything that needs one.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
