#!/bin/sh
# Healthy when the sidecar's /status says "Status OK": the API serves and every filesystem of
# EncfsSideCarArgs is mounted. Used by the image's HEALTHCHECK and by Kubernetes exec probes
# (the API listens on loopback only, so an httpGet probe from the kubelet cannot reach it).
status=$(curl -fsS --max-time 4 "http://localhost:${Port:-8080}/status") || exit 1
case "$status" in
*'"message":"Status OK"'* | *'"message": "Status OK"'*) exit 0 ;;
*) echo "$status" >&2; exit 1 ;;
esac
