#!/usr/bin/env bash
# Make sure Google's Pub/Sub emulator (and Java, which runs it) is installed for the
# `vtrack listen` tests; try apt-get when it is missing. Never fails: without the emulator
# those tests skip and say why.
set -uo pipefail

launcher=platform/pubsub-emulator/bin/cloud-pubsub-emulator
found() {
  [ -n "${VTRACK_PUBSUB_EMULATOR:-}" ] && [ -x "$VTRACK_PUBSUB_EMULATOR" ] && return 0
  for root in /usr/lib/google-cloud-sdk /usr/share/google-cloud-sdk; do
    [ -x "$root/$launcher" ] && return 0
  done
  command -v cloud-pubsub-emulator >/dev/null 2>&1
}

if found && command -v java >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Pub/Sub emulator or Java missing and apt-get unusable: the listen tests will skip" >&2
  exit 0
fi
echo "installing the Pub/Sub emulator and Java with apt-get" >&2
apt-get update -qq >/dev/null 2>&1
command -v java >/dev/null 2>&1 ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null 2>&1
found || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  google-cloud-cli-pubsub-emulator >/dev/null 2>&1 ||
  echo "google-cloud-cli-pubsub-emulator is not available here: the listen tests will skip" >&2
exit 0
