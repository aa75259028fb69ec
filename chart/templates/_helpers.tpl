{{/*
Chart name, overridable with nameOverride (truncated to the 63 characters DNS labels allow).
*/}}
{{- define "l5d-twisted.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, with the chart name appended unless the release
name already contains it (release "mesh" -> "mesh-l5d-twisted"; release "l5d-twisted" -> itself).
This is also the name of the mesh's Service, which the daemonset transformer looks up.
*/}}
{{- define "l5d-twisted.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "l5d-twisted.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: they select the DaemonSet's pods, which Kubernetes does not let change
after creation, so they hold only what never changes across upgrades.
*/}}
{{- define "l5d-twisted.selectorLabels" -}}
app.kubernetes.io/name: {{ include "l5d-twisted.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels: the selector labels plus those that may change with each upgrade.
*/}}
{{- define "l5d-twisted.labels" -}}
helm.sh/chart: {{ include "l5d-twisted.chart" . }}
{{ include "l5d-twisted.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: l5d-twisted
app.kubernetes.io/component: proxy
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount the mesh pods run as.
*/}}
{{- define "l5d-twisted.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "l5d-twisted.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The project image: `repository@digest` when image.digest is set (the tag is then ignored),
else `repository:tag`, the tag defaulting to the chart's appVersion.
*/}}
{{- define "l5d-twisted.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Namespace the dtab's io.l5d.k8s names look services up in (default: the release's).
*/}}
{{- define "l5d-twisted.appNamespace" -}}
{{- default .Release.Namespace .Values.mesh.appNamespace }}
{{- end }}

{{/*
Seconds Kubernetes waits after SIGTERM before killing a mesh pod: the drain period
(admin.drainPeriodMs, still accepting) plus the grace in-flight requests get once the
listeners close (admin.shutdownGraceMs), rounded up, plus a margin, so requests finish
before SIGKILL.
*/}}
{{- define "l5d-twisted.terminationGracePeriodSeconds" -}}
{{- $a := .Values.mesh.admin }}
{{- $grace := div (add $a.drainPeriodMs $a.shutdownGraceMs 999) 1000 }}
{{- if gt (int .Values.terminationGracePeriodSeconds) 0 }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $grace) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be greater than mesh.admin.drainPeriodMs + mesh.admin.shutdownGraceMs (%v + %v ms), or the pod is killed mid-drain" .Values.terminationGracePeriodSeconds $a.drainPeriodMs $a.shutdownGraceMs) }}
{{- end }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add $grace .Values.terminationGraceMarginSeconds }}
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express; fails the render with the reason.
*/}}
{{- define "l5d-twisted.validate" -}}
{{- $m := .Values.mesh }}
{{- if and (kindIs "map" $m.service) (hasKey $m.service "type") }}
{{- fail (printf "mesh.service.type (%v): mesh.service is the routers' linkerd 1 `service` block (retries, totalTimeoutMs, responseClassifier); the type of the mesh's Kubernetes Service is service.type (ClusterIP, NodePort or LoadBalancer)" $m.service.type) }}
{{- end }}
{{- $ports := list (int $m.outgoing.port) (int $m.incoming.port) (int $m.admin.port) }}
{{- if ne (len (uniq $ports)) 3 }}
{{- fail (printf "mesh.outgoing.port (%v), mesh.incoming.port (%v) and mesh.admin.port (%v) must differ: they are listened on in the same pod" $m.outgoing.port $m.incoming.port $m.admin.port) }}
{{- end }}
{{- if and $m.hostNetwork $m.outgoing.hostPort (ne (int $m.outgoing.hostPort) (int $m.outgoing.port)) }}
{{- fail (printf "with mesh.hostNetwork, mesh.outgoing.hostPort (%v) must equal mesh.outgoing.port (%v) or be 0" $m.outgoing.hostPort $m.outgoing.port) }}
{{- end }}
{{- /* An incoming router that does not honour request dtabs removes the one the outgoing
router forwards (l5d-ctx-dtab): it binds the name again without it and the app never passes
it on, so a staged request is delivered to the unstaged service. */}}
{{- range $key := list "enabled" "allowAddresses" }}
{{- if and (index $m.outgoing.requestDtab $key) (not (index $m.incoming.requestDtab $key)) }}
{{- fail (printf "mesh.outgoing.requestDtab.%s needs mesh.incoming.requestDtab.%s too: the incoming router would remove the dtab the outgoing router forwards, and a staged request would reach the unstaged service" $key $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The ingress peers allowed on the admin port: this release's Prometheus and helm test pods
(the mesh smoke check pings the admin), then networkPolicy.admin.from.  A list (YAML).
*/}}
{{- define "l5d-twisted.adminPeers" -}}
{{- $peers := list }}
{{- if .Values.prometheus.enabled }}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "prometheus" "app.kubernetes.io/instance" .Release.Name))) }}
{{- end }}
{{- if .Values.tests.enabled }}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" (printf "%s-smoke" (include "l5d-twisted.name" .)) "app.kubernetes.io/instance" .Release.Name))) }}
{{- end }}
{{- $peers = concat $peers .Values.networkPolicy.admin.from }}
{{- toYaml $peers }}
{{- end }}

{{/*
Labels of the helm test pods: not the selector labels, so the mesh's Service and DaemonSet
never count a test pod as one of theirs.
*/}}
{{- define "l5d-twisted.testLabels" -}}
helm.sh/chart: {{ include "l5d-twisted.chart" . }}
app.kubernetes.io/name: {{ include "l5d-twisted.name" . }}-smoke
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: l5d-twisted
app.kubernetes.io/component: test
{{- end }}
