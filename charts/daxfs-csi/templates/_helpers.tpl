{{/* The daxfs-csi image, tag defaulting to the chart's appVersion. */}}
{{- define "daxfs-csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "daxfs-csi.labels" -}}
app.kubernetes.io/name: daxfs-csi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (controller, node, fuse-host). */}}
{{- define "daxfs-csi.selector" -}}
app.kubernetes.io/name: daxfs-csi
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The fuse-host socket, in the state dir both node pods mount. */}}
{{- define "daxfs-csi.fuseHostSocket" -}}
{{ .Values.node.stateDir }}/fuse-host.sock
{{- end }}

{{- define "daxfs-csi.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
