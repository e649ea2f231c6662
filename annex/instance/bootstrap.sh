#!/bin/bash
# condor_annex instance bootstrap, the launch template's user data (see docs/instance.md). The template
# sets ANNEX_STACK, ANNEX_REGION and ANNEX_BUCKET first. It fetches annex/* from the bucket, arms the
# local lease, installs HTCondor if missing, configures and starts it. Whatever fails within ANNEX_BOUND
# seconds leaves the group and powers off: never idle at the user's expense.
# Tests set ANNEX_ROOT (stands for /), ANNEX_IMDS_URL and ANNEX_BOUND.
set -uo pipefail
umask 022
R=${ANNEX_ROOT:-} IMDS=${ANNEX_IMDS_URL:-http://169.254.169.254} BOUND=${ANNEX_BOUND:-900}
D=$R/var/lib/condor-annex SB=$R/usr/local/sbin C=$R/etc/condor T0=$(date +%s) IID='' K=''
log() { echo "condor_annex: $*" >&2; }
a() { aws --region "${ANNEX_REGION:-}" --cli-connect-timeout 10 --cli-read-timeout 30 "$@"; }
leave() {
  trap - ERR
  log "$1; leaving the group and powering off"
  [ -z "$IID" ] || a autoscaling terminate-instance-in-auto-scaling-group --instance-id "$IID" --should-decrement-desired-capacity >/dev/null
  shutdown -h now
  exit 1
}
retry() { # "$@" until it succeeds, backing off exponentially, within the bound
  local w=2 left
  until "$@"; do
    left=$((T0 + BOUND - $(date +%s)))
    [ "$left" -gt 0 ] || return 1
    sleep $((w < left ? w : left))
    w=$((w < 32 ? w * 2 : 64))
  done
}
imds() { # IMDSv2: a session token first, then the instance id
  local t
  t=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") &&
    IID=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $t" "$IMDS/latest/meta-data/instance-id") && [ -n "$IID" ]
}
get() { a s3api get-object --bucket "$ANNEX_BUCKET" --key "annex/$1" "$D/$1" >/dev/null; }
fetch() {
  for k in condor_config expiry annex-shutdown annex-lease; do get "$k" || return 1; done
  K=token
  grep -q '^SEC_PASSWORD_FILE' "$D/condor_config" && K=pool_password
  get "$K"
}
htcondor() { # the official installer, as an execute node; the annex's config.d file overrides its config
  local cm
  cm=$(sed -n 's/^COLLECTOR_HOST = //p' "$D/condor_config")
  curl -fsSL https://get.htcondor.org | bash -s -- --no-dry-run --channel stable --execute "${cm%%[:,? ]*}" &&
    command -v condor_master >/dev/null
}
up() { systemctl is-active --quiet condor; }

trap 'leave "bootstrap failed at line $LINENO"' ERR
if [ -z "${ANNEX_BUCKET:-}" ] || [ -z "${ANNEX_STACK:-}" ] || [ -z "${ANNEX_REGION:-}" ]; then
  leave "the launch template set no ANNEX_BUCKET, ANNEX_STACK or ANNEX_REGION"
fi
mkdir -p "$SB" "$C/config.d" "$R/etc/condor-annex" && install -d -m 0700 "$D"
retry imds || leave "no instance id from the instance metadata service"
retry fetch || leave "cannot fetch s3://$ANNEX_BUCKET/annex/"
printf 'ANNEX_%s=%q\n' BUCKET "$ANNEX_BUCKET" REGION "$ANNEX_REGION" STACK "$ANNEX_STACK" INSTANCE_ID "$IID" >"$R/etc/condor-annex/env"
install -m 0755 "$D/annex-shutdown" "$D/annex-lease" "$SB/"
"$SB/annex-lease" arm
command -v condor_master >/dev/null || retry htcondor || leave "cannot install HTCondor"
if [ "$K" = pool_password ]; then
  install -d -m 0700 "$C/passwords.d" && install -m 0600 "$D/$K" "$C/passwords.d/POOL"
else
  install -d -m 0700 "$C/tokens.d" && install -m 0600 "$D/$K" "$C/tokens.d/condor-annex"
fi
rm -f "$D/$K"
install -m 0644 "$D/condor_config" "$C/config.d/99-condor-annex.conf"
{ systemctl enable condor && systemctl restart condor && retry up; } || leave "HTCondor did not start"
log "HTCondor is running; this instance joins the pool as part of $ANNEX_STACK"
