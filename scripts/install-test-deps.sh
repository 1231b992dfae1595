#!/usr/bin/env bash
# Installs what the integration tests drive the proxy with: curl, socat, Python requests, and the
# tools that make the htpasswd fixtures (Apache's htpasswd from apache2-utils, openssl), and HAProxy
# (in front of ringgate with the PROXY protocol), Samba's winbind and smbpasswd (NTLM delegation), an MIT
# Kerberos KDC, its admin tools and kinit (Negotiate), and Python's prometheus-client (its text parser reads
# the /metrics scrape in the tests).
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v socat >/dev/null || need+=(socat)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# NTLM through Samba (tests/ntlm.rs): ntlm_auth, winbindd and wbinfo (winbind), smbpasswd
# (samba-common-bin), for a local SAM the winbind backend delegates to.
command -v ntlm_auth >/dev/null || need+=(winbind)
command -v smbpasswd >/dev/null || need+=(samba-common-bin)
# Negotiate (tests/negotiate.rs, scripts/compare-negotiate.sh): an MIT realm on loopback
# (krb5kdc, kdb5_util and kadmin.local; kinit), and the GSS-API library ringgate links.
command -v krb5kdc >/dev/null || [ -x /usr/sbin/krb5kdc ] || need+=(krb5-kdc)
command -v kadmin.local >/dev/null || [ -x /usr/sbin/kadmin.local ] || need+=(krb5-admin-server)
command -v kinit >/dev/null || need+=(krb5-user)
# faketime: a client an hour ahead (clock skew) and a proxy two days ahead (expired tickets).
command -v faketime >/dev/null || need+=(faketime)
[ -e /usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2 ] || [ -e /lib/x86_64-linux-gnu/libgssapi_krb5.so.2 ] || need+=(libgssapi-krb5-2)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus-client
