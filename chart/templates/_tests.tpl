{{/*
`helm test` pods: each runs one `l5d-twisted smoke` check from the project image.  The
proxy check goes through the node's hostPort (HOST_IP), as the sample app does.
*/}}
{{- define "l5d-twisted.smokeMeshArgs" -}}
- smoke
- --timeout
- {{ .Values.tests.timeoutSeconds | quote }}
- --admin
- {{ printf "http://%s.%s.svc:%v" (include "l5d-twisted.fullname" .) .Release.Namespace .Values.mesh.admin.port | quote }}
{{- if index .Values "hello-world" "enabled" }}
- --proxy
{{- if .Values.mesh.outgoing.hostPort }}
- {{ printf "$(HOST_IP):%v" .Values.mesh.outgoing.hostPort | quote }}
{{- else }}
{{- /* No hostPort: reach an outgoing router through the mesh's Service instead. */}}
- {{ printf "%s.%s.svc:%v" (include "l5d-twisted.fullname" .) .Release.Namespace .Values.mesh.outgoing.port | quote }}
{{- end }}
- --target
- http://hello/
{{- end }}
{{- end }}

{{- define "l5d-twisted.smokePrometheusArgs" -}}
- smoke
- --timeout
- {{ .Values.tests.timeoutSeconds | quote }}
- --prometheus
- {{ printf "http://%s-prometheus.%s.svc:%v" .Release.Name .Release.Namespace .Values.prometheus.port | quote }}
{{- end }}

{{- define "l5d-twisted.smokeGrafanaArgs" -}}
- smoke
- --timeout
- {{ .Values.tests.timeoutSeconds | quote }}
- --grafana
- {{ printf "http://%s-grafana.%s.svc:%v" .Release.Name .Release.Namespace .Values.grafana.port | quote }}
{{- range .Values.tests.dashboardUids }}
- --dashboard
- {{ . | quote }}
{{- end }}
{{- end }}

{{- define "l5d-twisted.smokePodSpec" -}}
{{- $root := .root -}}
restartPolicy: Never
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: smoke
    image: {{ include "l5d-twisted.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command: ["l5d-twisted"]
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: HOST_IP
        valueFrom:
          fieldRef:
            fieldPath: status.hostIP
      - name: PYTHONDONTWRITEBYTECODE
        value: "1"
    resources:
      requests:
        cpu: 10m
        memory: 32Mi
      limits:
        memory: 128Mi
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
{{- end }}
