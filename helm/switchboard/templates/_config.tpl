{{/*
The server's config file. Keys are the flat `serve` flag names with `_` (the server
rejects unknown keys). Strings go through toJson, whose escapes are valid TOML; numbers
through int64, since Helm reads every number as a float. Secrets never appear here: NATS
user names, passwords, tokens and creds files are mounted from their Secret as read-only files,
which the config names (nats_*_file, nats_creds).
*/}}
{{- define "switchboard.configToml" -}}
{{- $v := .Values -}}
{{- $c := $v.config -}}
# Rendered by the switchboard Helm chart from its values; edit the values, not this file.
listen = {{ printf "%s:%d" $v.listenHost (int $v.containerPorts.grpc) | toJson }}
health_listen = {{ printf "%s:%d" $v.listenHost (int $v.containerPorts.health) | toJson }}
metrics_listen = {{ printf "%s:%d" $v.listenHost (int $v.containerPorts.metrics) | toJson }}
store = {{ $v.store | toJson }}
data_dir = {{ include "switchboard.dataDir" . | toJson }}
{{- if eq $v.store "nats" }}
nats_url = {{ $v.nats.url | toJson }}
{{- if not (kindIs "invalid" $v.nats.streamReplicas) }}
nats_stream_replicas = {{ $v.nats.streamReplicas | int64 }}
{{- end }}
{{- if and $v.nats.existingSecret $v.nats.secretKeys.user }}
nats_user_file = {{ printf "%s/user" (include "switchboard.natsDir" .) | toJson }}
{{- end }}
{{- if and $v.nats.existingSecret $v.nats.secretKeys.password }}
nats_password_file = {{ printf "%s/password" (include "switchboard.natsDir" .) | toJson }}
{{- end }}
{{- if and $v.nats.existingSecret $v.nats.secretKeys.token }}
nats_token_file = {{ printf "%s/token" (include "switchboard.natsDir" .) | toJson }}
{{- end }}
{{- if and $v.nats.existingSecret $v.nats.secretKeys.creds }}
nats_creds = {{ printf "%s/%s" (include "switchboard.natsDir" .) $v.nats.secretKeys.creds | toJson }}
{{- end }}
{{- if and $v.nats.existingSecret $v.nats.secretKeys.ca }}
nats_ca = {{ printf "%s/%s" (include "switchboard.natsDir" .) $v.nats.secretKeys.ca | toJson }}
{{- end }}
{{- end }}
log_format = "json"
log_level = {{ $c.logLevel | toJson }}
dedup_window = {{ $c.dedupWindow | toString | toJson }}
retention_max_age = {{ $c.retention.maxAge | toString | toJson }}
retention_max_events = {{ $c.retention.maxEvents | int64 }}
replay_cache_bytes = {{ $c.replayCacheBytes | int64 }}
retention_interval = {{ $c.retention.interval | toString | toJson }}
correlation_window = {{ $c.correlationWindow | toString | toJson }}
call_idle_timeout = {{ $c.callIdleTimeout | toString | toJson }}
heartbeat_interval = {{ $c.heartbeatInterval | toString | toJson }}
subscriber_buffer = {{ $c.subscriberBuffer | int64 }}
max_payload_bytes = {{ $c.maxPayloadBytes | int64 }}
max_message_bytes = {{ $c.maxMessageBytes | int64 }}
max_concurrent_streams = {{ $c.maxConcurrentStreams | int64 }}
keepalive_interval = {{ $c.keepaliveInterval | toString | toJson }}
keepalive_timeout = {{ $c.keepaliveTimeout | toString | toJson }}
default_region = {{ $c.defaultRegion | toJson }}
drain_delay = {{ $c.drainDelay | toString | toJson }}
cors_origins = {{ $c.corsOrigins | toJson }}
no_board = {{ not $c.board }}
{{- if not (kindIs "invalid" $c.maxSubscribersPerTenant) }}
max_subscribers_per_tenant = {{ $c.maxSubscribersPerTenant | int64 }}
{{- end }}
{{- if not (kindIs "invalid" $c.rateLimit.perSecond) }}
rate_limit_per_second = {{ $c.rateLimit.perSecond | int64 }}
{{- end }}
{{- if not (kindIs "invalid" $c.rateLimit.burst) }}
rate_limit_burst = {{ $c.rateLimit.burst | int64 }}
{{- end }}
{{- if $v.auth.enabled }}
auth_file = {{ printf "%s/tokens.toml" (include "switchboard.authDir" .) | toJson }}
{{- end }}
{{- if $v.tls.enabled }}
tls_cert = {{ printf "%s/tls.crt" (include "switchboard.tlsDir" .) | toJson }}
tls_key = {{ printf "%s/tls.key" (include "switchboard.tlsDir" .) | toJson }}
{{- if $v.tls.clientAuth }}
tls_client_ca = {{ printf "%s/ca.crt" (include "switchboard.tlsDir" .) | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The auth file: one [[tokens]] table per token.
Usage: include "switchboard.tokensToml" $tokens
*/}}
{{- define "switchboard.tokensToml" -}}
# Bearer tokens of switchboard, rendered by its Helm chart. Each sha256 is the hex SHA-256
# of a token; the tokens themselves are never stored here.
{{- range . }}

[[tokens]]
name = {{ .name | toJson }}
sha256 = {{ .sha256 | lower | toJson }}
tenant = {{ .tenant | toJson }}
roles = {{ .roles | toJson }}
{{- end }}
{{- end }}
