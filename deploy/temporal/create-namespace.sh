#!/bin/sh
# docker-compose.yml's temporal-namespace job (temporalio/admin-tools): waits for the frontend to be healthy,
# then registers the workers' namespace if it is missing (closed workflows kept 7 days), and exits.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}"
attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  [ "$attempt" -ge 60 ] && { echo "temporal-namespace: no healthy frontend at $TEMPORAL_ADDRESS after $attempt tries" >&2; exit 1; }
  attempt=$((attempt + 1))
  sleep 2
done
if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "temporal-namespace: $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention 7d --address "$TEMPORAL_ADDRESS"
  echo "temporal-namespace: created $TEMPORAL_NAMESPACE"
fi
