#!/usr/bin/env bash
# Prints the path of a helm binary of $HELM_VERSION (hack/versions.sh), built
# once by hack/tools.sh into the cache and never rebuilt:
#
#   HELM="$(hack/helm.sh)"; "$HELM" lint --strict charts/daxfs-csi
exec "$(dirname "$0")/tools.sh" helm
