#!/usr/bin/env bash
# A backend written from docs/PROTOCOL.md alone, with nothing of this project: OpenSSL signs
# the EdDSA compact JWS, mosquitto_pub publishes it, mosquitto_sub reads the replies.
# It proves the documented contract is enough to drive a cabinet.
#
#   tests/independent-backend.sh HOST PORT USER PASSWORD CABINET AUD KEY.pem KID SLOT
#
# Prints every reply for the command as JSON lines; exits 0 when the terminal reply is
# `succeeded`, 1 for any other terminal state, 3 when none arrived within 20 s.
set -euo pipefail
HOST=$1 PORT=$2 USER=$3 PASS=$4 CABINET=$5 AUD=$6 KEY=$7 KID=$8 SLOT=$9

b64url() { basenc --base64url -w0 | tr -d '='; }

now=$(date +%s)
jti="sh-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
header=$(printf '{"alg":"EdDSA","kid":"%s","typ":"JWT"}' "$KID")
claims=$(printf '{"aud":"%s","jti":"%s","iat":%d,"exp":%d,"kind":"dispense","slot":%d,"qty":1,"order_id":"order-%s","log_id":"log-%s"}' \
    "$AUD" "$jti" "$now" $((now + 60)) "$SLOT" "$jti" "$jti")
signing_input="$(printf '%s' "$header" | b64url).$(printf '%s' "$claims" | b64url)"
# Ed25519 signs the message itself (no digest); OpenSSL wants it in a file for that.
msg=$(mktemp)
printf '%s' "$signing_input" >"$msg"
signature=$(openssl pkeyutl -sign -inkey "$KEY" -rawin -in "$msg" | b64url)
rm -f "$msg"
token="$signing_input.$signature"

# Subscribe to the cabinet's state and reply topics in one SUBSCRIBE; the retained presence
# message arrives after the SUBACK, so seeing it means we will not miss a reply.
coproc SUB { exec mosquitto_sub -h "$HOST" -p "$PORT" -u "$USER" -P "$PASS" -q 1 -v \
    -t "cabinet/v1/$CABINET/state" -t "cabinet/v1/$CABINET/reply"; }
trap 'kill "$SUB_PID" 2>/dev/null || true' EXIT
while IFS= read -r -t 20 line <&"${SUB[0]}"; do
    [[ $line == "cabinet/v1/$CABINET/state "* ]] && break
done

mosquitto_pub -h "$HOST" -p "$PORT" -u "$USER" -P "$PASS" -q 1 -t "cabinet/v1/$CABINET/cmd" -m "$token"

while IFS= read -r -t 20 line <&"${SUB[0]}"; do
    topic=${line%% *}
    body=${line#* }
    [[ $topic == "cabinet/v1/$CABINET/reply" ]] || continue
    [[ $(jq -r .cmd_id <<<"$body") == "$jti" ]] || continue
    echo "$body"
    case $(jq -r .state <<<"$body") in
        accepted | dispensing) ;;
        succeeded) exit 0 ;;
        *) exit 1 ;;
    esac
done
echo "no terminal reply for $jti within 20 s" >&2
exit 3
