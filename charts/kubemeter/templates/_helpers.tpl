{{/* The chart name, or nameOverride. */}}
{{- define "kubemeter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every namespaced object (63 characters at most: DNS label). */}}
{{- define "kubemeter.fullname" -}}
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

{{/* The full name qualified by the namespace, for cluster-scoped objects shared by every release. */}}
{{- define "kubemeter.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kubemeter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubemeter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubemeter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemeter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The chart's labels with commonLabels over them: one value per key (appended, a key the chart sets would be
rendered twice), and none of the selector's, whose value the Deployment's immutable selector matches. */}}
{{- define "kubemeter.labels" -}}
{{- $selector := include "kubemeter.selectorLabels" . | fromYaml }}
{{- include "kubemeter.refuseSelectorKeys" (list $selector .Values.commonLabels "commonLabels") }}
{{- $labels := dict "helm.sh/chart" (include "kubemeter.chart" .) "app.kubernetes.io/version" .Chart.AppVersion
  "app.kubernetes.io/component" "operator" "app.kubernetes.io/part-of" "kubemeter"
  "app.kubernetes.io/managed-by" .Release.Service }}
{{- toYaml (mergeOverwrite $labels .Values.commonLabels $selector) }}
{{- end }}

{{/* The pod template's labels: the chart's and podLabels over them, the selector's keys refused likewise. */}}
{{- define "kubemeter.podLabels" -}}
{{- include "kubemeter.refuseSelectorKeys" (list (include "kubemeter.selectorLabels" . | fromYaml) .Values.podLabels "podLabels") }}
{{- toYaml (mergeOverwrite (include "kubemeter.labels" . | fromYaml) .Values.podLabels) }}
{{- end }}

{{/* Fails when the labels given in a value (list: selector labels, given labels, the value's name) set a
selector label: pods labelled otherwise would not match the Deployment's selector. */}}
{{- define "kubemeter.refuseSelectorKeys" -}}
{{- $selector := index . 0 }}
{{- $given := index . 1 }}
{{- $value := index . 2 }}
{{- range $key := keys $selector | sortAlpha }}
{{- if hasKey $given $key }}
{{- fail (printf "%s must not set %s: the chart sets it (to %q) in the Deployment's selector, which is immutable and must match the pods' labels; leave it out (nameOverride changes app.kubernetes.io/name, the release name app.kubernetes.io/instance)" $value $key (get $selector $key)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's image: global.imageRegistry/image.repository, then @image.digest or :image.tag (appVersion). */}}
{{- define "kubemeter.image" -}}
{{- $repository := .Values.image.repository }}
{{- with dig "imageRegistry" "" (.Values.global | default dict) }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "kubemeter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubemeter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election keeps more than one replica from running policies twice. */}}
{{- define "kubemeter.leaderElection" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/* The Secret with the metrics port's certificate: the one given, or the one the chart generates. */}}
{{- define "kubemeter.metricsTLSSecret" -}}
{{- default (printf "%s-metrics-tls" (include "kubemeter.fullname" .)) .Values.metricsAuth.tlsSecret }}
{{- end }}

{{/* Seconds in a duration as the schema allows them, for comparing two: a Prometheus duration (1d, 1h30m, 500ms,
0; y, w and d as Prometheus counts them: 365, 7 and 1 days) or a Go one (the policy's interval: 1.5h, 30s; ns, us, µs). */}}
{{- define "kubemeter.durationSeconds" -}}
{{- $unitSeconds := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 0.001 "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 "y" 31536000 }}
{{- $seconds := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h|d|w|y)" . -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $seconds = addf $seconds (mulf (float64 $number) (get $unitSeconds (trimPrefix $number .))) }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/* Fails when an extraArgs entry sets a flag the chart sets from a value (the chart's flag and the entry would both
be passed, and the probes, the Service and the RBAC follow the value, not the entry). The operator's argparse
takes a unique prefix of a flag too (--metrics-p=9999), so an entry naming a prefix of one is refused as well. */}}
{{- define "kubemeter.checkExtraArgs" -}}
{{- $managed := dict
  "--metrics-port" "metricsPort (the container port, the probes, the Service and the NetworkPolicy follow it)"
  "--log-format" "logFormat"
  "--log-level" "logLevel"
  "--write-qps" "writeQPS"
  "--write-burst" "writeBurst"
  "--leader-election" "leaderElection.enabled (on by itself when replicaCount is more than 1; it also creates the Lease's Role)"
  "--no-leader-election" "leaderElection.enabled and replicaCount (leader election is on whenever replicaCount is more than 1)"
  "--lease-name" "fullnameOverride (the Lease is named after the release, and its Role grants that name only)"
  "--lease-namespace" "the release namespace (helm --namespace: the Lease and its Role are there)"
  "--kubelet-ca" "scrape.kubeletCA.configMap and scrape.kubeletCA.key (the chart mounts the ConfigMap)"
  "--metrics-auth" "metricsAuth.enabled (it also grants the operator tokenreviews and subjectaccessreviews)"
  "--tls-cert-file" "metricsAuth.tlsSecret (the chart mounts the Secret)"
  "--tls-private-key-file" "metricsAuth.tlsSecret (the chart mounts the Secret)" }}
{{- range $index, $arg := .Values.extraArgs }}
{{- $name := regexReplaceAll "=.*" $arg "" }}
{{- if and (hasPrefix "--" $name) (gt (len $name) 2) }}
{{- range $flag := keys $managed | sortAlpha }}
{{- if hasPrefix $name $flag }}
{{- fail (printf "extraArgs[%d] (%s) sets %s, which the chart sets itself: set %s instead" $index $arg $flag (get $managed $flag)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
