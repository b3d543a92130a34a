{{/*
The chart name, or nameOverride.
*/}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified app name: fullnameOverride, or <release>-<name> unless the release name
already contains the chart name. Truncated to 63 characters (the DNS label limit); names
that get a suffix are shortened further where they are built.
*/}}
{{- define "switchboard.fullname" -}}
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
<fullname>-<suffix>, kept within 63 characters.
Usage: include "switchboard.suffixed" (list . "headless")
*/}}
{{- define "switchboard.suffixed" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "switchboard.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ include "switchboard.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the server pods. They never change across upgrades (a workload's
selector is immutable), so they hold no version.
*/}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image tag: image.tag or the chart's appVersion.
*/}}
{{- define "switchboard.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set, else repository:tag.
*/}}
{{- define "switchboard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "switchboard.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Whether the workload is a StatefulSet (store: sqlite) rather than a Deployment.
*/}}
{{- define "switchboard.stateful" -}}
{{- if eq .Values.store "sqlite" }}true{{ end }}
{{- end }}

{{/*
Fixed paths inside the container. The data directory is the image's /var/lib/switchboard.
*/}}
{{- define "switchboard.configPath" -}}/etc/switchboard/config.toml{{- end }}
{{- define "switchboard.dataDir" -}}/var/lib/switchboard{{- end }}
{{- define "switchboard.authDir" -}}/etc/switchboard/auth{{- end }}
{{- define "switchboard.tlsDir" -}}/etc/switchboard/tls{{- end }}
{{- define "switchboard.natsDir" -}}/etc/switchboard/nats{{- end }}

{{/*
The Secret holding tokens.toml: auth.existingSecret or the chart's own.
*/}}
{{- define "switchboard.authSecretName" -}}
{{- default (include "switchboard.suffixed" (list . "auth")) .Values.auth.existingSecret }}
{{- end }}

{{/*
Whether the chart renders its own auth Secret.
*/}}
{{- define "switchboard.createAuthSecret" -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) }}true{{ end }}
{{- end }}

{{/*
Whether the chart generates a bootstrap token (auth on, nothing else given).
*/}}
{{- define "switchboard.generateToken" -}}
{{- if and (include "switchboard.createAuthSecret" .) .Values.auth.generateToken (empty .Values.auth.tokens) }}true{{ end }}
{{- end }}

{{/*
The Secret holding the TLS material: tls.existingSecret or the chart's own.
*/}}
{{- define "switchboard.tlsSecretName" -}}
{{- default (include "switchboard.suffixed" (list . "tls")) .Values.tls.existingSecret }}
{{- end }}

{{/*
Whether the chart renders its own TLS Secret.
*/}}
{{- define "switchboard.createTlsSecret" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}true{{ end }}
{{- end }}

{{/*
A NetworkPolicy peer from podLabels and namespaceLabels (empty namespaceLabels: the
release namespace only).
Usage: include "switchboard.networkPolicyPeer" .Values.networkPolicy.grpc
*/}}
{{- define "switchboard.networkPolicyPeer" -}}
- podSelector:
    {{- if .podLabels }}
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
    {{- else }} {}
    {{- end }}
  {{- with .namespaceLabels }}
  namespaceSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- with .extraFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The Service ports, targeting the container ports by name.
Usage: include "switchboard.servicePorts" (dict "ctx" . "metrics" true)
*/}}
{{- define "switchboard.servicePorts" -}}
{{- $ports := .ctx.Values.service.ports -}}
- name: grpc
  port: {{ $ports.grpc }}
  targetPort: grpc
  protocol: TCP
  appProtocol: grpc
- name: health
  port: {{ $ports.health }}
  targetPort: health
  protocol: TCP
  appProtocol: grpc
{{- if .metrics }}
- name: metrics
  port: {{ $ports.metrics }}
  targetPort: metrics
  protocol: TCP
  appProtocol: http
{{- end }}
{{- end }}

{{/*
Labels that identify this release's `helm test` pod. They differ from the server's
selector labels in the component, so the Services never route to the test pod.
*/}}
{{- define "switchboard.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}
