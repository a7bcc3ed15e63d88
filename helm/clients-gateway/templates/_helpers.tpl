{{- define "cg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cg.fullname" -}}
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

{{- define "cg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cg.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cg.secretName" -}}
{{- default (include "cg.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "cg.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The providers, each with the configuration key its credential feeds (as JSON; use with
fromJson): every block of config.providers, its credential `api_key` unless its block says
otherwise (credentialKey). Each one's values are config.providers.<name> (rendered as its
[providers.<name>] section, keys in snake_case), its credential secrets.<name><Key> (camelCase),
stored in the Secret under <name>-<key> (dashes).
*/}}
{{- define "cg.providers" -}}
{{- $providers := dict }}
{{- range $name, $p := .Values.config.providers }}
{{- $_ := set $providers $name ($p.credentialKey | default "api_key") }}
{{- end }}
{{- toJson $providers -}}
{{- end }}

{{/* Where the Secret's keys are mounted. */}}
{{- define "cg.secretDir" -}}/var/run/secrets/clients-gateway{{- end }}

{{/* Where the platform's CA bundle (tls.caBundle) is mounted. */}}
{{- define "cg.caDir" -}}/etc/clients-gateway-ca{{- end }}

{{/* Checks that cannot be said in values.schema.json. */}}
{{- define "cg.validate" -}}
{{- $multi := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- $i := .Values.idempotency }}
{{- $redis := or (and $i.redisUrl (not .Values.existingSecret)) (and .Values.existingSecret $i.redisUrlInExistingSecret) (not (empty $i.sentinel.sentinels)) }}
{{- if and $i.sentinel.sentinels (or $i.redisUrl $i.redisUrlInExistingSecret) }}
{{- fail "idempotency.sentinel.sentinels and idempotency.redisUrl are two ways to the same Redis: set one" }}
{{- end }}
{{- if and $i.sentinel.sentinels (not $i.sentinel.masterName) }}
{{- fail "idempotency.sentinel.sentinels needs idempotency.sentinel.masterName" }}
{{- end }}
{{- if and .Values.existingSecret $i.redisPassword }}
{{- fail "with existingSecret, put the Redis password in that Secret under the key redis-password and set idempotency.redisPasswordInExistingSecret: true, instead of idempotency.redisPassword" }}
{{- end }}
{{- if and .Values.existingSecret .Values.idempotency.redisUrl }}
{{- fail "with existingSecret, put the Redis URL in that Secret under the key redis-url and set idempotency.redisUrlInExistingSecret: true, instead of idempotency.redisUrl" }}
{{- end }}
{{- if and .Values.existingSecret .Values.proxy.url }}
{{- fail "with existingSecret, put the proxy URL in that Secret under the key proxy-url and set proxy.urlInExistingSecret: true, instead of proxy.url" }}
{{- end }}
{{- if and .Values.proxy.noProxy (not (or .Values.proxy.url .Values.proxy.urlInExistingSecret)) }}
{{- fail "proxy.noProxy is set without a proxy (proxy.url or proxy.urlInExistingSecret)" }}
{{- end }}
{{- if and $multi (not $redis) }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs idempotency.redisUrl (or idempotency.sentinel): without a shared Redis, a retried request could create a client twice on another replica. Set idempotency.redisUrl (or, with existingSecret, idempotency.redisUrlInExistingSecret), or replicaCount: 1 with autoscaling.enabled: false" }}
{{- end }}
{{- $o := .Values.operations }}
{{- if and .Values.existingSecret .Values.secrets.operationsEncryptionKey }}
{{- fail "with existingSecret, put the operations' key in that Secret under the key operations-key and set operations.encryptionKeyInExistingSecret: true, instead of secrets.operationsEncryptionKey" }}
{{- end }}
{{- if and $o.enabled $redis (not (or (and .Values.secrets.operationsEncryptionKey (not .Values.existingSecret)) (and .Values.existingSecret $o.encryptionKeyInExistingSecret))) }}
{{- fail "operations (enabled) with Redis need a key that seals what they keep there: secrets.operationsEncryptionKey (32 random bytes in base64: openssl rand -base64 32), or existingSecret with the key operations-key and operations.encryptionKeyInExistingSecret: true; or operations.enabled: false" }}
{{- end }}
{{- range $name, $w := $o.webhooks }}
{{- if not (or $.Values.existingSecret (index $.Values.secrets.webhookSecrets $name)) }}
{{- fail (printf "operations.webhooks.%s needs its signing secret: secrets.webhookSecrets.%s (whsec_ then base64 of 24-64 random bytes), or existingSecret with the key webhook-%s" $name $name $name) }}
{{- end }}
{{- end }}
{{- range $name, $secret := .Values.secrets.webhookSecrets }}
{{- if not (hasKey $o.webhooks $name) }}
{{- fail (printf "secrets.webhookSecrets.%s names no webhook of operations.webhooks" $name) }}
{{- end }}
{{- end }}
{{- $auth := .Values.config.auth }}
{{- if and (eq $auth.mode "publicKey") (not $auth.publicKeyPem) }}
{{- fail "config.auth.mode publicKey needs config.auth.publicKeyPem" }}
{{- end }}
{{- if and (eq $auth.mode "jwks") (not $auth.jwksUrl) }}
{{- fail "config.auth.mode jwks needs config.auth.jwksUrl" }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- if and (eq $auth.mode "hs256") (not .Values.secrets.jwtHs256Secret) }}
{{- fail "config.auth.mode hs256 needs secrets.jwtHs256Secret (at least 32 bytes), or existingSecret with the key jwt-hs256" }}
{{- end }}
{{- range $name, $key := include "cg.providers" . | fromJson }}
{{- $value := printf "%s%s" $name (camelcase $key) }}
{{- if and (index $.Values.config.providers $name).enabled (not (index $.Values.secrets $value)) }}
{{- fail (printf "config.providers.%s.enabled needs secrets.%s (or existingSecret)" $name $value) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
