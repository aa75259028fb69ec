{{/*
The only API reads of service discovery: the io.l5d.k8s namer and the daemonset
transformer watch Endpoints (and EndpointSlices where the namer uses them).  Nothing else.
*/}}
{{- define "l5d-twisted.discoveryRules" -}}
- apiGroups: [""]
  resources: ["endpoints"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
{{- end }}
