{{/* The chart's name, overridable. */}}
{{- define "adapter-registry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name for every object (63 characters at most). */}}
{{- define "adapter-registry.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "adapter-registry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "adapter-registry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods (add app.kubernetes.io/component). */}}
{{- define "adapter-registry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adapter-registry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The CPU image: server, migrations, CPU workers. */}}
{{- define "adapter-registry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The worker image: worker.image, else the CPU image. */}}
{{- define "adapter-registry.workerImage" -}}
{{- if .Values.worker.image.repository }}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) }}
{{- else }}
{{- include "adapter-registry.image" . }}
{{- end }}
{{- end }}

{{/* The Secret with the database URL and S3 keys. */}}
{{- define "adapter-registry.secretName" -}}
{{- default (include "adapter-registry.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The Secret's data (also the migration hook's own copy). */}}
{{- define "adapter-registry.secretData" -}}
ADAPTER_REGISTRY_DATABASE_URL: {{ required "database.url (postgres://...) or existingSecret is required" .Values.database.url | b64enc | quote }}
{{- with .Values.s3.accessKeyId }}
AWS_ACCESS_KEY_ID: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.s3.secretAccessKey }}
AWS_SECRET_ACCESS_KEY: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.s3.sessionToken }}
AWS_SESSION_TOKEN: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Environment of every registry container: the ConfigMap and the Secret. */}}
{{- define "adapter-registry.envFrom" -}}
- configMapRef:
    name: {{ include "adapter-registry.fullname" . }}
- secretRef:
    name: {{ include "adapter-registry.secretName" . }}
{{- end }}

{{/* Pod annotations that roll the pods when the configuration changes. */}}
{{- define "adapter-registry.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
