#!/bin/bash
# condor_annex instance bootstrap (docs/instance.md). The launch template's user data (user-data.sh) sets
# ANNEX_STACK, ANNEX_REGION and ANNEX_BUCKET, fetches s3://$ANNEX_BUCKET/annex/bundle.tar.gz, unpacks it
# into /var/lib/condor-annex and runs this file from there as root; the same bundle brought the HTCondor
# configuration (condor_config) and condor_annex's programs next to it. The bootstrap walls the instance
# metadata service off from jobs, fetches the expiry and the pool's credential (the two objects that do
# not travel in the bundle), installs condor_annex's programs and services, installs HTCondor unless the
# image already has it, and starts HTCondor. Whatever fails within ANNEX_BOUND seconds (900) makes the
# instance ask to leave its group and power off: a machine that cannot join must never idle at the
# user's expense.
# Tests set ANNEX_ROOT (stands for /), ANNEX_IMDS_URL, ANNEX_BOUND, ANNEX_LEAVE_WAIT and ANNEX_LEAVE_POLL.
set -uo pipefail
umask 022

root=${ANNEX_ROOT:-}
metadata_url=${ANNEX_IMDS_URL:-http://169.254.169.254}
bound_seconds=${ANNEX_BOUND:-900}
started_at=$(date +%s)

staging_dir=$root/var/lib/condor-annex      # what comes from the bucket (the bundle unpacked), root only
programs_dir=$root/usr/local/sbin
condor_dir=$root/etc/condor
annex_dir=$root/etc/condor-annex
systemd_dir=$root/etc/systemd/system
firewall_script=$annex_dir/imds-firewall
prepared_marker=$annex_dir/prepared        # written by prepare-image.sh when the image was made
boot_file=$condor_dir/config.d/98-condor-annex-boot.conf
config_file=$condor_dir/config.d/99-condor-annex.conf
installer_url=https://get.htcondor.org
programs=(annex-shutdown annex-lease annex-interruptions)

instance_id=''
credential_kind=''
prepared_image=False

log() { echo "condor_annex: $*" >&2; }

aws_call() { aws --region "$ANNEX_REGION" --cli-connect-timeout 10 --cli-read-timeout 30 "$@"; }

metadata_get() { # IMDSv2: a session token, then latest/meta-data/$1
  local token
  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$metadata_url/latest/api/token") &&
    curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" "$metadata_url/latest/meta-data/$1"
}

json_string() { # $1 as the inside of a JSON string
  local text=${1//\\/\\\\}
  text=${text//\"/\\\"}
  printf '%s' "${text//[[:cntrl:]]/ }"
}

leave_and_power_off() { # as annex-shutdown does: ask to leave (annex/leaving/<id>), wait to be let go, power off
  trap - ERR
  local problem=$1 request give_up_at
  log "$problem; leaving the group and powering off"
  request=$(mktemp)
  give_up_at=$(($(date +%s) + ${ANNEX_LEAVE_WAIT:-120}))
  printf '{"instance": "%s", "reason": "bootstrap: %s", "at": "%s"}\n' "$(json_string "$instance_id")" \
    "$(json_string "$problem")" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$request"
  # Without an instance id, or when the put fails, nobody would act on the request: power off at once.
  if [ -n "$instance_id" ] && timeout 60 aws --region "$ANNEX_REGION" --cli-connect-timeout 10 s3api put-object \
    --bucket "$ANNEX_BUCKET" --key "annex/leaving/$instance_id" --content-type application/json \
    --body "$request" >/dev/null; then
    until [ "$(metadata_get autoscaling/target-lifecycle-state)" = Terminated ] && log "$instance_id is Terminated"; do
      [ "$(date +%s)" -le "$give_up_at" ] || break
      sleep "${ANNEX_LEAVE_POLL:-5}"
    done
  fi
  rm -f "$request"
  shutdown -h now
  exit 1
}

retry_within_bound() { # "$@" until it succeeds, backing off exponentially, until the bound
  local pause=2 seconds_left
  until "$@"; do
    seconds_left=$((started_at + bound_seconds - $(date +%s)))
    [ "$seconds_left" -gt 0 ] || return 1
    sleep $((pause < seconds_left ? pause : seconds_left))
    pause=$((pause < 32 ? pause * 2 : 64))
  done
}

learn_instance_id() {
  instance_id=$(metadata_get instance-id) && [[ $instance_id =~ ^i-[0-9a-f]+$ ]]
}

# --- the image --------------------------------------------------------------------------------------

has_firewall_tool() { command -v nft >/dev/null || command -v iptables >/dev/null; }

recognise_prepared_image() { # made by prepare-image.sh: HTCondor and a firewall tool already there
  if [ -e "$prepared_marker" ] && command -v condor_master >/dev/null && has_firewall_tool; then
    prepared_image=True
    log "a prepared image ($(head -n 1 "$prepared_marker")): nothing to install"
  fi
}

install_nftables() { # with the package manager there is
  local manager
  for manager in dnf yum apt-get; do
    if command -v "$manager" >/dev/null; then
      [ "$manager" != apt-get ] || "$manager" -qq update >&2
      DEBIAN_FRONTEND=noninteractive "$manager" install -y nftables >&2
      return
    fi
  done
  return 1
}

run_htcondor_installer() {
  # The official installer. With a role (--execute) it asks for a pool password on stdin, which here is
  # the installer itself; without one it installs HTCondor configured as a pool of one machine, which
  # undo_single_machine_setup takes back: the annex's own config.d file configures this execute node.
  curl -fsSL "$installer_url" | bash -s -- --no-dry-run --channel stable >&2 || log "the HTCondor installer failed"
  # What matters is that HTCondor's programs are there: this boot configures and starts HTCondor itself.
  command -v condor_master >/dev/null
}

undo_single_machine_setup() { # what the installer left that an annex instance must not keep
  local single_machine_config=$condor_dir/config.d/00-minicondor
  # It listens on 127.0.0.1 only; emptied rather than removed, so a package update does not bring it back.
  [ ! -e "$single_machine_config" ] ||
    echo '# condor_annex: emptied; this is an execute node configured by 99-condor-annex.conf' >"$single_machine_config"
  # Keys the installer's own HTCondor made for its pool of one; the annex's credential is installed later.
  rm -f "$condor_dir/passwords.d/"* "$condor_dir/tokens.d/"*
}

install_htcondor() {
  run_htcondor_installer || return
  # It started HTCondor with its own configuration (the firewall was already in place); start_htcondor
  # starts it again with the annex's.
  systemctl stop condor || log "could not stop the HTCondor the installer started"
  undo_single_machine_setup
}

# --- only root reaches the metadata service: jobs get no AWS credentials ------------------------------

write_firewall_script() { # run now, and again by systemd before every start of HTCondor
  cat >"$firewall_script" <<'FIREWALL'
#!/bin/bash
# condor_annex: only root (HTCondor's daemons, condor_annex) may reach the instance metadata service
metadata_v4=169.254.169.254 metadata_v6=fd00:ec2::254 has_ipv6=''
iptables_rule=(-m owner ! --uid-owner 0 -j REJECT)
[ -e "${ANNEX_ROOT:-}/proc/net/if_inet6" ] && has_ipv6=1
# One transaction: add our own table (so the delete cannot fail), delete it, define it afresh.
wall_off_with_nft() {
  printf '%s\n' 'add table inet condor_annex' 'delete table inet condor_annex' 'table inet condor_annex {' \
    'chain output { type filter hook output priority 0;' "meta skuid != 0 ip daddr $metadata_v4 reject" \
    ${has_ipv6:+"meta skuid != 0 ip6 daddr $metadata_v6 reject"} '} }' | nft -f -
}
# Inserted only when not there already, so running it again adds no duplicate.
wall_off_with() {
  "$1" -C OUTPUT -d "$2" "${iptables_rule[@]}" 2>/dev/null || "$1" -I OUTPUT -d "$2" "${iptables_rule[@]}"
}
wall_off_with_iptables() {
  wall_off_with iptables "$metadata_v4" && { [ -z "$has_ipv6" ] || wall_off_with ip6tables "$metadata_v6"; }
}
{ command -v nft >/dev/null && wall_off_with_nft; } ||
  { command -v iptables >/dev/null && wall_off_with_iptables; }
FIREWALL
}

apply_firewall() { # and make systemd apply it again before every start of HTCondor, or not start it
  local drop_in_dir=$systemd_dir/condor.service.d
  write_firewall_script && bash "$firewall_script" && mkdir -p "$drop_in_dir" &&
    printf '%s\n' '[Service]' 'ExecStartPre=/bin/bash /etc/condor-annex/imds-firewall' >"$drop_in_dir/condor-annex.conf"
}

wall_off_metadata_service() {
  apply_firewall && return
  # A prepared image has its tool: installing it again would not help, and its boot installs nothing.
  [ "$prepared_image" = False ] && install_nftables && apply_firewall
}

# --- the annex's configuration: the bundle, and two objects from the bucket ---------------------------

missing_from_bundle() { # the first of the bundle's files (unpacked by the user data) that is not there
  local name
  for name in condor_config "${programs[@]}"; do
    [ -s "$staging_dir/$name" ] || { echo "$name" && return; }
  done
  return 1
}

fetch_object() { aws_call s3api get-object --bucket "$ANNEX_BUCKET" --key "annex/$1" "$staging_dir/$1" >/dev/null; }

fetch_configuration() { # the expiry (not in the bundle: `extend` rewrites it)
  fetch_object expiry
}

fetch_credential() { # uploaded once the annex's stack is complete (a stack that fails never holds it)
  credential_kind=token
  grep -q '^SEC_PASSWORD_FILE' "$staging_dir/condor_config" && credential_kind=pool_password
  fetch_object "$credential_kind"
}

write_settings() { # what annex-shutdown, annex-lease and annex-interruptions read
  printf 'ANNEX_%s=%q\n' BUCKET "$ANNEX_BUCKET" REGION "$ANNEX_REGION" STACK "$ANNEX_STACK" \
    INSTANCE_ID "$instance_id" >"$annex_dir/env"
}

install_programs() {
  local name
  for name in "${programs[@]}"; do
    install -m 0755 "$staging_dir/$name" "$programs_dir/" || return
  done
}

install_interruption_service() { # it must be watching before HTCondor runs a job
  printf '%s\n' '[Unit]' 'Description=condor_annex: drain HTCondor on spot rebalance and interruption notices' \
    'Before=condor.service' '[Service]' 'ExecStart=/usr/local/sbin/annex-interruptions' 'Restart=on-failure' \
    'RestartSec=5' '[Install]' 'WantedBy=multi-user.target' >"$systemd_dir/annex-interruptions.service" &&
    chmod 0644 "$systemd_dir/annex-interruptions.service" &&
    systemctl daemon-reload && systemctl enable --now annex-interruptions.service
}

install_credential() { # root's alone, and gone from where it was staged
  if [ "$credential_kind" = pool_password ]; then
    install -d -m 0700 "$condor_dir/passwords.d" && install -m 0600 "$staging_dir/$credential_kind" "$condor_dir/passwords.d/POOL"
  else
    install -d -m 0700 "$condor_dir/tokens.d" && install -m 0600 "$staging_dir/$credential_kind" "$condor_dir/tokens.d/condor-annex"
  fi
  local installed=$?
  rm -f "$staging_dir/$credential_kind"
  return $installed
}

# --- HTCondor ----------------------------------------------------------------------------------------

seconds_since_kernel_start() { # /proc/uptime's first field, whole seconds
  local uptime
  read -r uptime _ 2>/dev/null <"$root/proc/uptime" && [[ ${uptime%%.*} =~ ^[0-9]+$ ]] && echo "${uptime%%.*}"
}

# shellcheck disable=SC2016  # $(STARTD_ATTRS) is HTCondor's macro, written as it is
record_boot_time() { # before HTCondor starts, so its startd advertises both attributes
  local boot_seconds
  if ! boot_seconds=$(seconds_since_kernel_start); then
    log "cannot read $root/proc/uptime; AnnexBootSeconds stays undefined"
    printf '%s\n' '# condor_annex: how this instance booted' "AnnexPreparedImage = $prepared_image" \
      'STARTD_ATTRS = $(STARTD_ATTRS) AnnexPreparedImage' >"$boot_file"
    return
  fi
  printf '%s\n' '# condor_annex: how this instance booted (seconds from the kernel start to HTCondor starting)' \
    "AnnexBootSeconds = $boot_seconds" "AnnexPreparedImage = $prepared_image" \
    'STARTD_ATTRS = $(STARTD_ATTRS) AnnexBootSeconds AnnexPreparedImage' >"$boot_file"
  log "booted in $boot_seconds s from the kernel start to HTCondor starting (prepared image: $prepared_image)"
}

htcondor_is_running() { systemctl is-active --quiet condor; }

start_htcondor() { systemctl enable condor && systemctl restart condor && retry_within_bound htcondor_is_running; }

# --- the boot ----------------------------------------------------------------------------------------

trap 'leave_and_power_off "bootstrap failed at line $LINENO"' ERR
if [ -z "${ANNEX_BUCKET:-}" ] || [ -z "${ANNEX_STACK:-}" ] || [ -z "${ANNEX_REGION:-}" ]; then
  leave_and_power_off "the launch template set no ANNEX_BUCKET, ANNEX_STACK or ANNEX_REGION"
fi
mkdir -p "$programs_dir" "$condor_dir/config.d" "$annex_dir" "$systemd_dir" && install -d -m 0700 "$staging_dir"
retry_within_bound learn_instance_id || leave_and_power_off "no instance id from the instance metadata service"
if missing=$(missing_from_bundle); then
  leave_and_power_off "annex/bundle.tar.gz brought no $missing"
fi
recognise_prepared_image
wall_off_metadata_service || leave_and_power_off "no nft or iptables could keep jobs from the instance metadata service"
retry_within_bound fetch_configuration || leave_and_power_off "cannot fetch s3://$ANNEX_BUCKET/annex/"
write_settings
install_programs || leave_and_power_off "cannot install condor_annex's programs"
"$programs_dir/annex-lease" arm || leave_and_power_off "cannot arm the local lease"
install_interruption_service || leave_and_power_off "cannot start the spot interruption service"
if [ "$prepared_image" = False ] && ! command -v condor_master >/dev/null; then
  retry_within_bound install_htcondor || leave_and_power_off "cannot install HTCondor"
fi
retry_within_bound fetch_credential || leave_and_power_off "no pool credential in s3://$ANNEX_BUCKET/annex/"
install_credential || leave_and_power_off "cannot install the pool's credential"
install -m 0644 "$staging_dir/condor_config" "$config_file"
record_boot_time
start_htcondor || leave_and_power_off "HTCondor did not start"
log "HTCondor is running; this instance joins the pool as part of $ANNEX_STACK"
