{{- define "prometheus.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prometheus.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prometheus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "prometheus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: l5d-twisted
app.kubernetes.io/component: metrics
{{- end }}

{{- define "prometheus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "prometheus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces whose endpoints are discovered (default: the release namespace), as a list.
*/}}
{{- define "prometheus.namespaces" -}}
{{- $ns := .Values.mesh.namespaces | default (list .Release.Namespace) }}
{{- toJson $ns }}
{{- end }}

{{/*
prometheus.yml: kubernetes_sd `endpoints` discovery of the mesh's Service, like linkerd-viz.
*/}}
{{- define "prometheus.config" -}}
global:
  scrape_interval: {{ .Values.scrapeInterval }}
  evaluation_interval: {{ .Values.evaluationInterval }}
rule_files:
  - /etc/prometheus/rules.yml
scrape_configs:
  - job_name: l5d-twisted
    metrics_path: {{ .Values.mesh.metricsPath }}
    kubernetes_sd_configs:
      - role: endpoints
        namespaces:
          names: {{ include "prometheus.namespaces" . }}
    relabel_configs:
      # Only the mesh's own Service of this release, at its admin port.
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name]
        action: keep
        regex: {{ .Values.mesh.serviceName | quote }}
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_instance]
        action: keep
        regex: {{ .Release.Name | quote }}
      - source_labels: [__meta_kubernetes_endpoint_port_name]
        action: keep
        regex: {{ .Values.mesh.portName | quote }}
      # One mesh instance = one pod: name it by the pod, and say where it runs.
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: instance
      - source_labels: [__meta_kubernetes_pod_node_name]
        target_label: node
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
    metric_relabel_configs:
      # linkerd-viz's shortening: client "%/io.l5d.k8s.daemonset/.../http/world-v1" -> "world-v1",
      # service "svc/hello" -> "hello".
      - source_labels: [client]
        regex: ".*/([^/]+)/?"
        target_label: client
        replacement: "$1"
      - source_labels: [service]
        regex: ".*/([^/]+)/?"
        target_label: service
        replacement: "$1"
{{- end }}

{{/*
The image: `repository@digest` when image.digest is set (the tag is then ignored), else
`repository:tag`, the tag defaulting to the chart's appVersion.
*/}}
{{- define "prometheus.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}
