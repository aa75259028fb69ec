{{/*
Recording rules for the dashboards' top line, and multi-window multi-burn-rate alerts on the
per-service success-rate SLO (the SRE workbook's, for a 30-day budget): page when the error
ratio burns 14.4x the budget rate over 1 h (and still over 5 m) or 6x over 6 h (and 30 m);
ticket at 3x over 1 d (and 2 h) or 1x over 3 d (and 6 h).  The short window makes an alert
stop soon after the errors do.
*/}}
{{- define "prometheus.rules" -}}
{{- $budget := round (subf 1.0 .Values.slo.successRate) 9 }}
groups:
  - name: l5d-twisted.top-line
    rules:
      - record: rt_service:requests:rate1m
        expr: sum by (rt, service) (rate(rt:service:requests[1m]))
      - record: rt_service:success:rate1m
        expr: sum by (rt, service) (rate(rt:service:success[1m]))
      - record: rt_service:success_rate:ratio_rate1m
        expr: rt_service:success:rate1m / (rt_service:requests:rate1m > 0)
      - record: rt:requests:rate1m
        expr: sum by (rt) (rt_service:requests:rate1m)
      - record: rt:success_rate:ratio_rate1m
        expr: sum by (rt) (rt_service:success:rate1m) / (sum by (rt) (rt_service:requests:rate1m) > 0)
      - record: rt_status:client_responses:rate1m
        expr: label_replace(sum by (rt) (rate(rt:client:status:4XX[1m])), "status", "4XX", "", "") or label_replace(sum by (rt) (rate(rt:client:status:5XX[1m])), "status", "5XX", "", "")
      {{- range $name, $q := dict "p50" "0.5" "p95" "0.95" "p99" "0.99" "max" "1" }}
      - record: rt_service:request_latency_ms:{{ $name }}
        expr: max by (rt, service) (rt:service:request_latency_ms{quantile="{{ $q }}"})
      {{- end }}
  - name: l5d-twisted.slo
    rules:
      {{- range $w := list "5m" "30m" "1h" "2h" "6h" "1d" "3d" }}
      - record: rt_service:error_ratio:rate{{ $w }}
        expr: sum by (rt, service) (rate(rt:service:failures[{{ $w }}])) / (sum by (rt, service) (rate(rt:service:requests[{{ $w }}])) > 0)
      {{- end }}
      - alert: L5dServiceErrorBudgetBurnFast
        expr: |
          (
            (rt_service:error_ratio:rate1h > {{ round (mulf 14.4 $budget) 9 }} and rt_service:error_ratio:rate5m > {{ round (mulf 14.4 $budget) 9 }})
            or
            (rt_service:error_ratio:rate6h > {{ round (mulf 6 $budget) 9 }} and rt_service:error_ratio:rate30m > {{ round (mulf 6 $budget) 9 }})
          )
          and on (rt, service) rt_service:requests:rate1m > {{ .Values.slo.minRequestRate }}
        labels:
          severity: page
        annotations:
          summary: "Service {{ "{{" }} $labels.service {{ "}}" }} on router {{ "{{" }} $labels.rt {{ "}}" }} burns its error budget fast"
          description: "Its failure ratio would exhaust the {{ .Values.slo.successRate }} success-rate SLO's 30-day error budget in under 2 to 5 days."
      - alert: L5dServiceErrorBudgetBurnSlow
        expr: |
          (
            (rt_service:error_ratio:rate1d > {{ round (mulf 3 $budget) 9 }} and rt_service:error_ratio:rate2h > {{ round (mulf 3 $budget) 9 }})
            or
            (rt_service:error_ratio:rate3d > {{ $budget }} and rt_service:error_ratio:rate6h > {{ $budget }})
          )
          and on (rt, service) rt_service:requests:rate1m > {{ .Values.slo.minRequestRate }}
        labels:
          severity: ticket
        annotations:
          summary: "Service {{ "{{" }} $labels.service {{ "}}" }} on router {{ "{{" }} $labels.rt {{ "}}" }} burns its error budget"
          description: "Its failure ratio would exhaust the {{ .Values.slo.successRate }} success-rate SLO's 30-day error budget before the period ends."
      - alert: L5dMeshInstanceDown
        expr: up{job="l5d-twisted"} == 0
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "Mesh instance {{ "{{" }} $labels.instance {{ "}}" }} on node {{ "{{" }} $labels.node {{ "}}" }} cannot be scraped"
          description: "Apps on that node cannot send through the mesh while its proxy is down."
{{- with .Values.extraRuleGroups }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
