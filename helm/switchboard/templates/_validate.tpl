{{/*
Render-time checks of contradictions, each with a sentence that says what to change.
values.schema.json refuses the same combinations first; these messages are what a user
sees when schema validation is skipped (`--skip-schema-validation`), and they cover the
checks JSON Schema cannot express (comparisons between two values).
*/}}
{{- define "switchboard.validate" -}}
{{- $errors := list }}
{{- $v := .Values }}
{{- if eq $v.store "sqlite" }}
  {{- if gt (int $v.replicaCount) 1 }}
    {{- $errors = append $errors (printf "store: sqlite runs exactly one replica (one SQLite file on one volume), but replicaCount is %v. Use store: nats with nats.url for several replicas." $v.replicaCount) }}
  {{- end }}
  {{- if $v.autoscaling.enabled }}
    {{- $errors = append $errors "autoscaling.enabled needs store: nats; store: sqlite is a single-replica StatefulSet and cannot scale." }}
  {{- end }}
  {{- if $v.podDisruptionBudget.enabled }}
    {{- $errors = append $errors "podDisruptionBudget.enabled needs store: nats; with store: sqlite's single replica a PodDisruptionBudget would block every node drain." }}
  {{- end }}
{{- else if eq $v.store "nats" }}
  {{- if not $v.nats.url }}
    {{- $errors = append $errors "store: nats needs nats.url (e.g. nats://nats.nats.svc:4222)." }}
  {{- end }}
  {{- if and (not $v.autoscaling.enabled) (lt (int $v.replicaCount) 2) }}
    {{- $errors = append $errors (printf "store: nats is the highly available mode and needs replicaCount >= 2 (got %v)." $v.replicaCount) }}
  {{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
  {{- $errors = append $errors (printf "autoscaling.minReplicas (%v) must not exceed autoscaling.maxReplicas (%v)." $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
  {{- $errors = append $errors "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)." }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) (or (not $v.tls.cert) (not $v.tls.key)) }}
  {{- $errors = append $errors "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret) or both tls.cert and tls.key." }}
{{- end }}
{{- if and $v.tls.clientAuth (not $v.tls.enabled) }}
  {{- $errors = append $errors "tls.clientAuth (mutual TLS) needs tls.enabled." }}
{{- end }}
{{- if and $v.tls.enabled $v.tls.clientAuth (not $v.tls.existingSecret) (not $v.tls.ca) }}
  {{- $errors = append $errors "tls.clientAuth needs the client CA: tls.ca, or ca.crt in tls.existingSecret." }}
{{- end }}
{{- if and $v.auth.enabled (not $v.auth.existingSecret) (empty $v.auth.tokens) (not $v.auth.generateToken) }}
  {{- $errors = append $errors "auth.enabled with no tokens would refuse every call: set auth.tokens, auth.existingSecret or auth.generateToken." }}
{{- end }}
{{- $natsKeys := $v.nats.secretKeys }}
{{- if and (not $v.nats.existingSecret) (or $natsKeys.user $natsKeys.password $natsKeys.token $natsKeys.creds $natsKeys.ca) }}
  {{- $errors = append $errors "nats.secretKeys name keys of nats.existingSecret, which is empty." }}
{{- end }}
{{- $drain := include "switchboard.durationSeconds" $v.config.drainDelay }}
{{- if ne $drain "" }}
  {{- $needed := add (int $v.preStopSleepSeconds) (int $drain) 30 }}
  {{- if le (int $v.terminationGracePeriodSeconds) $needed }}
    {{- $errors = append $errors (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v) + config.drainDelay (%s) + 30s for the server's shutdown, i.e. be more than %d; otherwise subscribers can be killed before their final checkpoint." $v.terminationGracePeriodSeconds $v.preStopSleepSeconds $v.config.drainDelay $needed) }}
  {{- end }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nswitchboard: invalid values:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}

{{/*
Whole seconds (rounded up) of a duration made of ms/s/m/h/d parts such as "5s" or "1m30s";
empty for anything else (the server parses more forms; those skip the comparison).
*/}}
{{- define "switchboard.durationSeconds" -}}
{{- $d := toString . | trim }}
{{- if eq $d "0" }}0
{{- else if regexMatch "^([0-9]+(ms|s|m|h|d))+$" $d }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d)" $d -1 }}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $ms = add $ms (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000) $unit)) }}
{{- end }}
{{- div (add $ms 999) 1000 }}
{{- end }}
{{- end }}
