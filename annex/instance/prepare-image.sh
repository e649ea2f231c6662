#!/bin/bash
# condor_annex: prepare an image for annex instances, once (docs/instance.md). The user data of a
# short-lived builder instance that `condor_annex setup image` launches from a base image (Amazon Linux
# 2023 by default; dnf, yum or apt-get systems). It installs what every annex instance's boot would
# otherwise install from the internet: HTCondor (the official installer) and nftables, makes sure the aws
# CLI is there, leaves HTCondor disabled (it must not start before an annex's bootstrap has walled off the
# metadata service and configured it), cleans what must not be baked into an image, writes the marker
# /etc/condor-annex/prepared that the bootstrap recognises, and powers off; the builder's shutdown
# behaviour is stop, so the command can then make the image. On any failure it writes
# /etc/condor-annex/prepare-failed instead, and powers off all the same. The console log tells which:
#   condor_annex prepare-image: READY <HTCondor version>
#   condor_annex prepare-image: FAILED: <what failed>
# Tests set ANNEX_ROOT (stands for /).
set -uo pipefail
umask 022

root=${ANNEX_ROOT:-}
annex_dir=$root/etc/condor-annex
condor_dir=$root/etc/condor
prepared_marker=$annex_dir/prepared
failed_marker=$annex_dir/prepare-failed
installer_url=https://get.htcondor.org
htcondor_version=''

say() { echo "condor_annex prepare-image: $*"; }

power_off() { shutdown -h now; }

fail() {
  rm -f "$prepared_marker"
  printf '%s\n' "$1" >"$failed_marker"
  say "FAILED: $1"
  power_off
  exit 1
}

step() { # $1: what it does; the rest: the command that does it
  local what=$1
  shift
  say "$what"
  "$@" || fail "$what"
}

package_manager() { # the one this system has
  local manager
  for manager in dnf yum apt-get; do
    command -v "$manager" >/dev/null && echo "$manager" && return
  done
  return 1
}

install_packages() {
  local manager
  manager=$(package_manager) || return
  [ "$manager" != apt-get ] || apt-get -qq update
  DEBIAN_FRONTEND=noninteractive "$manager" install -y "$@"
}

install_htcondor() { # as the bootstrap of an unprepared image does: no role, so no pool password asked for
  curl -fsSL "$installer_url" | bash -s -- --no-dry-run --channel stable && command -v condor_master >/dev/null
}

leave_htcondor_off() { # the installer started and enabled it; each annex's bootstrap enables it
  systemctl stop condor && systemctl disable condor
}

undo_single_machine_setup() { # the installer set up a pool of one machine; each annex configures itself
  local single_machine_config=$condor_dir/config.d/00-minicondor
  # It listens on 127.0.0.1 only; emptied rather than removed, so a package update does not bring it back.
  if [ -e "$single_machine_config" ]; then
    echo '# condor_annex: emptied; an annex instance is an execute node configured by 99-condor-annex.conf' \
      >"$single_machine_config" || return
  fi
  # The keys its HTCondor made for that pool: no secret may be baked into an image.
  rm -f "$condor_dir/passwords.d/"* "$condor_dir/tokens.d/"*
}

install_nftables() { # the bootstrap walls the metadata service off with it before HTCondor starts
  command -v nft >/dev/null || install_packages nftables
  command -v nft >/dev/null
}

ensure_aws_cli() { # the user data and the bootstrap fetch the annex's configuration with it
  command -v aws >/dev/null || install_packages awscli-2 || install_packages awscli
  command -v aws >/dev/null
}

read_htcondor_version() { # its first line (not through head: that could end condor_version with SIGPIPE)
  local output
  output=$(condor_version) || return
  htcondor_version=${output%%$'\n'*}
  [ -n "$htcondor_version" ]
}

clean_package_caches() {
  case $(package_manager) in
  dnf | yum) "$(package_manager)" clean all ;;
  apt-get) apt-get clean ;;
  esac
}

clean_cloud_init_state() { # so an instance of the image runs its own user data afresh
  if command -v cloud-init >/dev/null; then
    cloud-init clean --logs
  else
    rm -rf "$root/var/lib/cloud/instances" "$root/var/lib/cloud/instance" "$root/var/log/cloud-init.log" \
      "$root/var/log/cloud-init-output.log"
  fi
}

clean_image() { # what this builder did must not show on the annex instances
  clean_package_caches || return
  # The builder's own HTCondor run: its logs, its queue, its scratch space.
  rm -rf "$root/var/log/condor/"* "$root/var/lib/condor/spool/"* "$root/var/lib/condor/execute/"* || return
  clean_cloud_init_state || return
  rm -f "$root/root/.bash_history" "$root/home/"*/.bash_history
}

write_prepared_marker() {
  printf 'HTCondor: %s\nPrepared: %s\n' "$htcondor_version" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$prepared_marker" &&
    chmod 0644 "$prepared_marker"
}

mkdir -p "$annex_dir" || fail "cannot make $annex_dir"
rm -f "$prepared_marker" "$failed_marker"
step "installing HTCondor with the official installer" install_htcondor
step "leaving HTCondor stopped and disabled until an annex's bootstrap configures it" leave_htcondor_off
step "taking back the installer's single-machine set-up" undo_single_machine_setup
step "installing nftables" install_nftables
step "making sure the aws CLI is there" ensure_aws_cli
step "reading HTCondor's version" read_htcondor_version
step "cleaning package caches, HTCondor's logs, cloud-init's state and shell history" clean_image
step "writing $prepared_marker" write_prepared_marker
# condor_version's first line reads "$CondorVersion: 24.0.1 2024-08-01 BuildID: ... $": the number is enough.
read -r _ version_number _ <<<"$htcondor_version"
say "READY ${version_number:-$htcondor_version}"
power_off
