{{/*
The connectors (`switchboard connect`, values `connectors.*`): which ones, their names and labels.
*/}}

{{/*
The connectors the chart knows: values key -> (subcommand, short name).
*/}}
{{- define "switchboard.connectorKinds" -}}
eventStreaming:
  command: 8x8-event-streaming
  short: connect-8x8
xelion:
  command: xelion
  short: connect-xelion
{{- end }}

{{/*
Labels that select one connector's pods (never the server's: the component differs).
Usage: include "switchboard.connectorSelectorLabels" (list . "connect-8x8")
*/}}
{{- define "switchboard.connectorSelectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "switchboard.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Labels of a connector's resources.
Usage: include "switchboard.connectorLabels" (list . "connect-8x8")
*/}}
{{- define "switchboard.connectorLabels" -}}
{{- $ctx := index . 0 -}}
helm.sh/chart: {{ include "switchboard.chart" $ctx }}
{{ include "switchboard.connectorSelectorLabels" . }}
app.kubernetes.io/version: {{ include "switchboard.imageTag" $ctx | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The server's gRPC address as the connectors reach it (the Service).
*/}}
{{- define "switchboard.connectorServerAddr" -}}
{{- printf "%s://%s.%s.svc:%v" (ternary "https" "http" .Values.tls.enabled) (include "switchboard.fullname" .) .Release.Namespace .Values.service.ports.grpc }}
{{- end }}

{{/*
Whether any connector is enabled.
*/}}
{{- define "switchboard.anyConnector" -}}
{{- if or .Values.connectors.eventStreaming.enabled .Values.connectors.xelion.enabled }}true{{ end }}
{{- end }}
