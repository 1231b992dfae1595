#!/usr/bin/env bash
# Installs what the integration tests drive the proxy with: curl, socat, Python requests.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v socat >/dev/null || need+=(socat)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests
