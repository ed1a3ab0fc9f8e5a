{{/* Labels on every object: the two the selectors and the uninstall selector use, then extraLabels. */}}
{{- define "credential-webhook.labels" -}}
app.kubernetes.io/name: credential-webhook
app.kubernetes.io/part-of: credential-guard
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The serving Certificate, as cainjector's inject-ca-from annotation names it. */}}
{{- define "credential-webhook.servingCertificate" -}}
{{ .Release.Namespace }}/credential-webhook-serving
{{- end }}

{{/* The user the webhook's own requests come as (its finalizer patches are exempt from admission). */}}
{{- define "credential-webhook.serviceAccountUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:credential-webhook
{{- end }}

{{/*
Install safety, evaluated while rendering, so a failure creates nothing. Against a cluster
(`helm install`, `helm upgrade`, Flux helm-controller) lookup reads the API server; without one
(`helm template`, `--dry-run=client`, Argo CD) lookup returns nothing and the check is skipped:
kube-system exists in every cluster, so an empty answer for it means "no cluster to ask".
*/}}
{{- define "credential-webhook.preflight" -}}
{{- if and .Values.certManager.check (lookup "v1" "Namespace" "" "kube-system") }}
{{- $missing := list }}
{{- range $crd := list "certificates.cert-manager.io" "issuers.cert-manager.io" }}
{{- if not (lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $crd) }}
{{- $missing = append $missing $crd }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "cert-manager is missing: CustomResourceDefinition %s not found. The webhook's serving certificate comes from cert-manager (v1.15+); without it the API server would call a fail-closed webhook it cannot trust and refuse every Credential, Region, ProviderInterface and ClusterDeployment write. Install cert-manager first (https://cert-manager.io/docs/installation/helm/), then run this install again. Nothing was created." (join ", " $missing)) }}
{{- end }}
{{- if not (lookup "v1" "Namespace" "" .Release.Namespace) }}
{{- fail (printf "namespace %s does not exist. The chart never creates its namespace (kcm-system belongs to KCM; an owned namespace would be deleted on uninstall). Install KCM first, or for another namespace create it yourself (kubectl create namespace %s), then run this install again. Nothing was created." .Release.Namespace .Release.Namespace) }}
{{- end }}
{{- if not (lookup "v1" "Namespace" "" .Values.systemNamespace) }}
{{- fail (printf "systemNamespace %s does not exist: it must be the namespace KCM runs in (Region kubeconfig Secrets live there). Set systemNamespace to KCM's namespace. Nothing was created." .Values.systemNamespace) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The distribution mode (CREDENTIAL_WEBHOOK_DISTRIBUTION_MODE): distribution.mode, or the boolean
`distribution` of charts before the modes (true is auto, false is off), so `--set distribution=false`
on an existing install keeps working.
*/}}
{{- define "credential-webhook.distributionMode" -}}
{{- if kindIs "bool" .Values.distribution -}}
{{ ternary "auto" "off" .Values.distribution }}
{{- else -}}
{{ .Values.distribution.mode | default "auto" }}
{{- end -}}
{{- end }}
