{{/*
namerd (namerd.enabled): its names, labels and config.  Its pods carry their own selector
labels (app.kubernetes.io/name: <name>-namerd), so neither the mesh's Service nor its
NetworkPolicy selects them.
*/}}
{{- define "l5d-twisted.namerdName" -}}
{{ include "l5d-twisted.fullname" . | trunc 56 | trimSuffix "-" }}-namerd
{{- end }}

{{- define "l5d-twisted.namerdSelectorLabels" -}}
app.kubernetes.io/name: {{ include "l5d-twisted.name" . }}-namerd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "l5d-twisted.namerdLabels" -}}
helm.sh/chart: {{ include "l5d-twisted.chart" . }}
{{ include "l5d-twisted.namerdSelectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: l5d-twisted
app.kubernetes.io/component: namerd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The mesh routers' interpreter when namerd is on: namerd's Service found through the mesh's
io.l5d.k8s namer (its port named `api`), no DNS needed.
*/}}
{{- define "l5d-twisted.namerdDst" -}}
/#/io.l5d.k8s/{{ .Release.Namespace }}/api/{{ include "l5d-twisted.namerdName" . }}
{{- end }}

{{- define "l5d-twisted.namerdConfig" -}}
{{- $dtab := tpl (.Values.namerd.dtab | default .Values.mesh.dtab) . | trim -}}
# namerd (docs/namerd.md): dtabs kept as DTab objects (dtabs.l5d.io) in {{ .Release.Namespace }},
# reached in-cluster with the pod's service account.
admin:
  ip: 0.0.0.0
  port: {{ .Values.namerd.adminPort }}
storage:
  kind: io.l5d.k8s
  namespace: {{ .Release.Namespace }}
  # Created when namerd starts and finds no such dtab; never overwritten.
  namespaces:
    {{ .Values.namerd.dtabNamespace }}: |
      {{- range splitList ";" $dtab }}{{ if trim . }}
      {{ trim . }};{{ end }}{{ end }}
namers:
  - kind: io.l5d.k8s
{{- with omit .Values.mesh.k8sNamer "kind" }}
{{ toYaml . | indent 4 }}
{{- end }}
interfaces:
  - kind: io.l5d.httpController
    ip: 0.0.0.0
    port: {{ .Values.namerd.port }}
{{- end }}
