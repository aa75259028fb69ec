{{/*
The mesh config (linkerd.yaml) generated from the values: linkerd 1's reference DaemonSet
deployment.  Router `outgoing` sends each request to the mesh pod on the destination pod's
node (io.l5d.k8s.daemonset, at that pod's `incoming` port); router `incoming` delivers only
to pods on its own node (io.l5d.k8s.localnode).  The io.l5d.k8s namer has no host/port
unless mesh.k8sNamer sets them: it then talks to the API server in-cluster with the pod's
service account token.  With namerd.enabled the routers have no dtab of their own: they
ask namerd (interpreter io.l5d.namerd.http) to bind with its dtab namerd.dtabNamespace.
*/}}
{{/*
A router server's trust keys (call with mesh.outgoing or mesh.incoming): which headers of its
clients it honours.
*/}}
{{- define "l5d-twisted.serverTrust" -}}
clearContext: {{ .clearContext }}
requestDtab:
  enabled: {{ .requestDtab.enabled }}
  allowAddresses: {{ .requestDtab.allowAddresses }}
{{- end }}

{{- define "l5d-twisted.meshConfig" -}}
{{- if .Values.mesh.configOverride -}}
{{ tpl .Values.mesh.configOverride . }}
{{- else -}}
{{- $dtab := tpl .Values.mesh.dtab . | trim -}}
{{- with .Values.mesh.workers -}}
# Reactor processes sharing the router ports (auto: one per CPU of the container's limit).
workers: {{ . }}
{{- end }}
admin:
{{- if .Values.mesh.admin.bindPodIP }}
  # Every pod reads this file: the DaemonSet passes the pod's own IP with --admin-ip.
{{- end }}
  ip: 0.0.0.0
  port: {{ .Values.mesh.admin.port }}
  drainPeriodMs: {{ .Values.mesh.admin.drainPeriodMs }}
  shutdownGraceMs: {{ .Values.mesh.admin.shutdownGraceMs }}
  allowShutdown: false
namers:
  - kind: io.l5d.k8s
{{- with omit .Values.mesh.k8sNamer "kind" }}
{{ toYaml . | indent 4 }}
{{- end }}
telemetry:
  - kind: io.l5d.prometheus
{{- if .Values.mesh.recentRequests.enabled }}
  - kind: io.l5d.recentRequests
    sampleRate: {{ .Values.mesh.recentRequests.sampleRate | float64 }}
    capacity: {{ .Values.mesh.recentRequests.capacity }}
{{- end }}
{{- with .Values.mesh.extraTelemetry }}
{{ toYaml . | indent 2 }}
{{- end }}
routers:
  - protocol: http
    label: outgoing
{{- if .Values.namerd.enabled }}
    # The dtab is namerd's ({{ .Values.namerd.dtabNamespace }}): a router dtab would be sent after it and win.
    interpreter:
      kind: io.l5d.namerd.http
      experimental: true
      dst: {{ include "l5d-twisted.namerdDst" . }}
      namespace: {{ .Values.namerd.dtabNamespace }}
{{- else }}
    dtab: |
      {{- range splitList ";" $dtab }}{{ if trim . }}
      {{ trim . }};{{ end }}{{ end }}
    interpreter:
      kind: default
{{- end }}
      transformers:
        - kind: io.l5d.k8s.daemonset
          namespace: {{ .Release.Namespace }}
          service: {{ include "l5d-twisted.fullname" . }}
          port: incoming
          hostNetwork: {{ .Values.mesh.hostNetwork }}
    servers:
      - port: {{ .Values.mesh.outgoing.port }}
        ip: 0.0.0.0
        {{- include "l5d-twisted.serverTrust" .Values.mesh.outgoing | nindent 8 }}
{{- with .Values.mesh.client }}
    client:
      {{- toYaml . | nindent 6 }}
{{- end }}
{{- with .Values.mesh.service }}
    service:
      {{- toYaml . | nindent 6 }}
{{- end }}
  - protocol: http
    label: incoming
{{- if .Values.namerd.enabled }}
    # The dtab is namerd's ({{ .Values.namerd.dtabNamespace }}): a router dtab would be sent after it and win.
    interpreter:
      kind: io.l5d.namerd.http
      experimental: true
      dst: {{ include "l5d-twisted.namerdDst" . }}
      namespace: {{ .Values.namerd.dtabNamespace }}
{{- else }}
    dtab: |
      {{- range splitList ";" $dtab }}{{ if trim . }}
      {{ trim . }};{{ end }}{{ end }}
    interpreter:
      kind: default
{{- end }}
      transformers:
        - kind: io.l5d.k8s.localnode
          hostNetwork: {{ .Values.mesh.hostNetwork }}
    servers:
      - port: {{ .Values.mesh.incoming.port }}
        ip: 0.0.0.0
        {{- include "l5d-twisted.serverTrust" .Values.mesh.incoming | nindent 8 }}
{{- with .Values.mesh.client }}
    client:
      {{- toYaml . | nindent 6 }}
{{- end }}
{{- with .Values.mesh.service }}
    service:
      {{- toYaml . | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}
