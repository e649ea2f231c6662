#!/bin/bash
# condor_annex user data (docs/instance.md): unpack annex/bundle.tar.gz, run its bootstrap.sh; or
# leave. Fn::Sub sets the names.
# shellcheck disable=SC2016
export ANNEX_STACK='${AnnexStack}' ANNEX_REGION='${AnnexRegion}' ANNEX_BUCKET='${AnnexBucket}'
imds=$ANNEX_IMDS_URL bound=$ANNEX_BOUND wait=$ANNEX_LEAVE_WAIT dir=$ANNEX_ROOT/var/lib/condor-annex
[ -n "$imds" ] || imds=http://169.254.169.254
[[ $bound =~ ^[0-9]+$ ]] || bound=900
[[ $wait =~ ^[0-9]+$ ]] || wait=120
end=$(($(date +%s) + bound)) pause=2 id=''
metadata() {
  local token
  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/latest/api/token") &&
    curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"
}
backoff() {
  local left=$((end - $(date +%s)))
  [ "$left" -gt 0 ] && sleep $((pause < left ? pause : left)) && pause=$((pause < 32 ? pause * 2 : 64))
}
leave() { # ask to leave, as annex-shutdown does
  local stop=$(($(date +%s) + wait))
  echo "condor_annex: $1; leaving and powering off" >&2
  printf '{"instance": "%s", "reason": "bootstrap: %s", "at": "%s"}\n' "$id" "$1" "$(date -u +%FT%TZ)" >"$dir/leaving"
  [ -n "$id" ] && timeout 60 aws --region "$ANNEX_REGION" s3api put-object --bucket "$ANNEX_BUCKET" \
    --key "annex/leaving/$id" --content-type application/json --body "$dir/leaving" >/dev/null &&
    until [ "$(metadata autoscaling/target-lifecycle-state)" = Terminated ] || [ "$(date +%s)" -gt "$stop" ]; do
      sleep 5
    done
  shutdown -h now
  exit 1
}
mkdir -p "$dir" && chmod 700 "$dir"
until id=$(metadata instance-id) && [[ $id =~ ^i-[0-9a-f]+$ ]]; do
  backoff || { id=''; leave "no instance id from the metadata service"; }
done
b=annex/bundle.tar.gz
until aws --region "$ANNEX_REGION" s3api get-object --bucket "$ANNEX_BUCKET" --key $b "$dir/b" >/dev/null &&
  tar -xzf "$dir/b" -C "$dir" --no-same-owner && [ -s "$dir/bootstrap.sh" ]; do
  backoff || leave "no usable $b"
done
exec bash "$dir/bootstrap.sh"
