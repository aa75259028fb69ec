{{- define "hello-world.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one app (call with (dict "root" $ "app" "hello")): never change across upgrades.
*/}}
{{- define "hello-world.selectorLabels" -}}
app.kubernetes.io/name: {{ .app }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "hello-world.labels" -}}
helm.sh/chart: {{ include "hello-world.chart" .root }}
{{ include "hello-world.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: l5d-twisted
app.kubernetes.io/component: sample-app
{{- end }}

{{/*
The image: `repository@digest` when image.digest is set (the tag is then ignored), else
`repository:tag`, the tag defaulting to the chart's appVersion (the parent's).
*/}}
{{- define "hello-world.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The pod spec shared by hello and world (call with (dict "root" $ "app" <values of the app> "kind" "hello"|"world")).
*/}}
{{- define "hello-world.podSpec" -}}
{{- $v := .root.Values -}}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .kind }}
    image: {{ include "hello-world.image" .root | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    command: ["l5d-twisted"]
    args:
      - example
      - {{ .kind }}
      - --ip
      - 0.0.0.0
      - --port
      - {{ .app.port | quote }}
      {{- if eq .kind "hello" }}
      - --target
      - {{ .app.target | quote }}
      {{- end }}
      - --latency-ms
      - {{ .app.latencyMs | quote }}
      - --failure-rate
      - {{ .app.failureRate | quote }}
    env:
      - name: POD_IP
        valueFrom:
          fieldRef:
            fieldPath: status.podIP
      {{- if eq .kind "hello" }}
      - name: NODE_NAME
        valueFrom:
          fieldRef:
            fieldPath: spec.nodeName
      - name: HOST_IP
        valueFrom:
          fieldRef:
            fieldPath: status.hostIP
      # Every call hello makes goes through the mesh proxy on its own node.
      - name: http_proxy
        value: {{ printf "$(%s):%v" $v.proxy.hostEnv $v.proxy.port | quote }}
      {{- end }}
      - name: PYTHONDONTWRITEBYTECODE
        value: "1"
    ports:
      - name: http
        containerPort: {{ .app.port }}
        protocol: TCP
    readinessProbe:
      tcpSocket:
        port: http
      periodSeconds: 5
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.securityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 16Mi
{{- end }}
