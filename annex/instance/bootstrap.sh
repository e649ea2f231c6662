#!/bin/bash
# condor_annex instance bootstrap, the launch template's user data (docs/instance.md); the template sets
# ANNEX_STACK, ANNEX_REGION and ANNEX_BUCKET first. Whatever fails within ANNEX_BOUND seconds leaves the
# group and powers off. Tests set ANNEX_ROOT (for /), ANNEX_IMDS_URL, ANNEX_BOUND, ANNEX_LEAVE_WAIT, _POLL.
set -uo pipefail
umask 022
R=${ANNEX_ROOT:-} IMDS=${ANNEX_IMDS_URL:-http://169.254.169.254} BOUND=${ANNEX_BOUND:-900}
D=$R/var/lib/condor-annex SB=$R/usr/local/sbin C=$R/etc/condor E=$R/etc/condor-annex T0=$(date +%s) IID='' K=''
log() { echo "condor_annex: $*" >&2; }
a() { aws --region "${ANNEX_REGION:-}" --cli-connect-timeout 10 --cli-read-timeout 30 "$@"; }
md() { # IMDSv2: a session token, then latest/meta-data/$1
  local t
  t=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") &&
    curl -sf -m 5 -H "X-aws-ec2-metadata-token: $t" "$IMDS/latest/meta-data/$1"
}
leave() { # as annex-shutdown: ask to leave (annex/leaving/<id>), wait to be let go, power off
  trap - ERR
  log "$1; leaving the group and powering off"
  local r=${1//\\/\\\\} f e
  f=$(mktemp) e=$(($(date +%s) + ${ANNEX_LEAVE_WAIT:-120}))
  printf '{"instance": "%s", "reason": "bootstrap: %s", "at": "%s"}\n' "$IID" "${r//\"/\\\"}" "$(date -u +%FT%TZ)" >"$f" &&
    [ -n "$IID" ] && timeout 60 aws --region "$ANNEX_REGION" s3api put-object --bucket "$ANNEX_BUCKET" \
    --key "annex/leaving/$IID" --body "$f" >/dev/null &&
    until [ "$(md autoscaling/target-lifecycle-state)" = Terminated ] && log "$IID is Terminated"; do
      [ "$(date +%s)" -le "$e" ] || break
      sleep "${ANNEX_LEAVE_POLL:-5}"
    done
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
imds() { IID=$(md instance-id) && [[ $IID =~ ^i-[0-9a-f]+$ ]]; }
fw() { # only root reaches the metadata service: jobs get no AWS credentials. Again at each condor start.
  cat >"$E/imds-firewall" <<'F'
#!/bin/bash
# condor_annex: only root (HTCondor's daemons, condor_annex) may reach the instance metadata service
A=169.254.169.254 B=fd00:ec2::254 V='' o=(-m owner ! --uid-owner 0 -j REJECT)
[ -e "${ANNEX_ROOT:-}/proc/net/if_inet6" ] && V=1
n() { printf '%s\n' 'add table inet condor_annex' 'delete table inet condor_annex' 'table inet condor_annex {' \
  'chain output { type filter hook output priority 0;' "meta skuid != 0 ip daddr $A reject" \
  ${V:+"meta skuid != 0 ip6 daddr $B reject"} '} }' | nft -f -; }
i() { "$1" -C OUTPUT -d "$2" "${o[@]}" 2>/dev/null || "$1" -I OUTPUT -d "$2" "${o[@]}"; }
{ command -v nft >/dev/null && n; } || { command -v iptables >/dev/null && i iptables $A && { [ -z "$V" ] || i ip6tables $B; }; }
F
  local d=$R/etc/systemd/system/condor.service.d
  bash "$E/imds-firewall" && mkdir -p "$d" && printf '%s\n' '[Service]' 'ExecStartPre=/bin/bash /etc/condor-annex/imds-firewall' >"$d/condor-annex.conf"
}
pm() { # nftables from the package manager there is
  for p in dnf yum apt-get; do
    command -v $p >/dev/null && { [ $p != apt-get ] || $p -qq update; DEBIAN_FRONTEND=noninteractive $p install -y nftables >&2; return; }
  done
  return 1
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
mkdir -p "$SB" "$C/config.d" "$E" && install -d -m 0700 "$D"
retry imds || leave "no instance id from the instance metadata service"
fw || { pm && fw; } || leave "no nft or iptables could keep jobs from the instance metadata service"
retry fetch || leave "cannot fetch s3://$ANNEX_BUCKET/annex/"
printf 'ANNEX_%s=%q\n' BUCKET "$ANNEX_BUCKET" REGION "$ANNEX_REGION" STACK "$ANNEX_STACK" INSTANCE_ID "$IID" >"$E/env"
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
