#!/bin/sh
# A quicproquo bot in a few lines of shell, on qpq-ctl and jq.
#
#   ping            -> pong
#   !echo TEXT      -> TEXT (any number of lines)
#   !date           -> the date, UTC
#
# It answers in the conversation it was asked in (DM or group) and ignores
# everything else, its own messages included (recv shows only incoming ones).
# Run it as the bot's account, e.g.:
#
#   qpq-ctl --profile bot register --server chat.example:7443 bot
#   QPQ_PROFILE=bot sh examples/qpq-bot.sh
#
# recv keeps a cursor, so after a restart the bot answers what came in while
# it was away. Replies go through stdin, so a reply that starts with `-` is
# text, not an option. QPQ_CTL names the qpq-ctl to use (default: on PATH).
set -eu
ctl=${QPQ_CTL:-qpq-ctl}

# A bot talks to whoever writes to it: it joins every DM and group it is
# invited to without asking (a person's profile asks, by default).
"$ctl" auto-accept everyone >/dev/null

"$ctl" --json recv --follow | while IFS= read -r message; do
  # Lines are typed: reactions, edits and the like come too (an edit has a
  # `text`); a bot answers messages.
  [ "$(printf '%s' "$message" | jq -r .type)" = message ] || continue
  conversation=$(printf '%s' "$message" | jq -r .conversation)
  text=$(printf '%s' "$message" | jq -r .text)
  case "$text" in
    ping) reply=pong ;;
    '!echo '*) reply=${text#!echo } ;;
    '!date') reply=$(date -u) ;;
    *) continue ;;
  esac
  printf '%s\n' "$reply" | "$ctl" send "$conversation" ||
    echo "qpq-bot: could not answer $(printf '%s' "$message" | jq -r .sender)" >&2
done
