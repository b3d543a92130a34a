{{/*
Checksum of the chart-managed secret inputs. It is taken over the values rather than the
rendered Secrets because a generated token is random on every offline render but kept
across upgrades in a cluster (lookup); hashing the values rolls the pods exactly when
tokens, TLS material or the Secret names change. Changes inside an existingSecret are
not seen by Helm: TLS files are reloaded by the server, tokens need a rollout restart.
*/}}
{{- define "switchboard.secretChecksum" -}}
{{- toJson (dict "auth" .Values.auth "tls" .Values.tls "nats" (pick .Values.nats "existingSecret" "secretKeys")) | sha256sum }}
{{- end }}

{{/*
The pod template shared by the StatefulSet (sqlite) and the Deployment (nats).
*/}}
{{- define "switchboard.podTemplate" -}}
{{- $v := .Values -}}
{{- $natsSecret := and (eq $v.store "nats") $v.nats.existingSecret -}}
{{- $k := $v.nats.secretKeys -}}
{{- /* Every NATS secret reaches the server as a read-only file, never as an environment variable. */}}
{{- $natsFiles := and $natsSecret (or $k.user $k.password $k.token $k.creds $k.ca) -}}
metadata:
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    checksum/secret: {{ include "switchboard.secretChecksum" . }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "switchboard.labels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "switchboard.serviceAccountName" . }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
  {{- /* Service links would put SWITCHBOARD_*-named variables into the environment, which the server reads. */}}
  enableServiceLinks: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  containers:
    - name: switchboard
      image: {{ include "switchboard.image" . | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - /usr/local/bin/switchboard
      args:
        - serve
        - --config
        - {{ include "switchboard.configPath" . }}
      ports:
        - name: grpc
          containerPort: {{ $v.containerPorts.grpc }}
          protocol: TCP
        - name: health
          containerPort: {{ $v.containerPorts.health }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $v.containerPorts.metrics }}
          protocol: TCP
      {{- with $v.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.startupProbe.enabled }}
      startupProbe:
        grpc:
          port: {{ $v.containerPorts.health }}
          service: ""
        periodSeconds: {{ $v.startupProbe.periodSeconds }}
        timeoutSeconds: {{ $v.startupProbe.timeoutSeconds }}
        failureThreshold: {{ $v.startupProbe.failureThreshold }}
      {{- end }}
      {{- if $v.livenessProbe.enabled }}
      livenessProbe:
        grpc:
          port: {{ $v.containerPorts.health }}
          service: ""
        periodSeconds: {{ $v.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ $v.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ $v.livenessProbe.failureThreshold }}
      {{- end }}
      {{- if $v.readinessProbe.enabled }}
      readinessProbe:
        grpc:
          port: {{ $v.containerPorts.health }}
          service: {{ $v.readinessProbe.service | quote }}
        periodSeconds: {{ $v.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ $v.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ $v.readinessProbe.failureThreshold }}
        successThreshold: {{ $v.readinessProbe.successThreshold }}
      {{- end }}
      {{- if gt (int $v.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $v.preStopSleepSeconds }}
      {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "switchboard.configPath" . }}
          subPath: config.toml
          readOnly: true
        - name: data
          mountPath: {{ include "switchboard.dataDir" . }}
        - name: tmp
          mountPath: /tmp
        {{- if $v.auth.enabled }}
        - name: auth
          mountPath: {{ include "switchboard.authDir" . }}
          readOnly: true
        {{- end }}
        {{- if $v.tls.enabled }}
        - name: tls
          mountPath: {{ include "switchboard.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if $natsFiles }}
        - name: nats
          mountPath: {{ include "switchboard.natsDir" . }}
          readOnly: true
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "switchboard.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if not (include "switchboard.stateful" .) }}
    - name: data
      emptyDir: {}
    {{- else if $v.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $v.persistence.existingClaim }}
    {{- else if not $v.persistence.enabled }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if $v.auth.enabled }}
    - name: auth
      secret:
        secretName: {{ include "switchboard.authSecretName" . }}
        defaultMode: 0440
        items:
          - key: tokens.toml
            path: tokens.toml
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ include "switchboard.tlsSecretName" . }}
        defaultMode: 0440
        items:
          - key: tls.crt
            path: tls.crt
          - key: tls.key
            path: tls.key
          {{- if $v.tls.clientAuth }}
          - key: ca.crt
            path: ca.crt
          {{- end }}
    {{- end }}
    {{- if $natsFiles }}
    - name: nats
      secret:
        secretName: {{ $v.nats.existingSecret }}
        defaultMode: 0440
        items:
          {{- /* user, password and token under fixed names (named by nats_*_file), the creds file and CA under their keys. */}}
          {{- range $role := list "user" "password" "token" }}
          {{- with index $k $role }}
          - key: {{ . }}
            path: {{ $role }}
          {{- end }}
          {{- end }}
          {{- with $k.creds }}
          - key: {{ . }}
            path: {{ . }}
          {{- end }}
          {{- with $k.ca }}
          - key: {{ . }}
            path: {{ . }}
          {{- end }}
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.affinity }}
  affinity:
    {{- toYaml $v.affinity | nindent 4 }}
  {{- else if eq $v.podAntiAffinityPreset "soft" }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "switchboard.selectorLabels" . | nindent 16 }}
  {{- else if eq $v.podAntiAffinityPreset "hard" }}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "switchboard.selectorLabels" . | nindent 14 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  {{- $constraints := list }}
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "switchboard.selectorLabels" $ | fromYaml)) }}
  {{- /* Deployments: count only the pods of one ReplicaSet, so a rollout does not skew the spread. */}}
  {{- if and (not (include "switchboard.stateful" $)) (not (hasKey $constraint "matchLabelKeys")) }}
  {{- $_ := set $constraint "matchLabelKeys" (list "pod-template-hash") }}
  {{- end }}
  {{- end }}
  {{- $constraints = append $constraints $constraint }}
  {{- end }}
  topologySpreadConstraints:
    {{- toYaml $constraints | nindent 4 }}
  {{- end }}
{{- end }}
