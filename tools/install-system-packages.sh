#!/usr/bin/env bash
# Install the system packages the grader uses, where this user can (root with apt-get); otherwise say what is
# missing and how to get it, and carry on: everything else works without them, with weaker isolation.
#   bubblewrap: the OS sandbox student code runs in (grader/sandbox.py)
set -u
packages=(bubblewrap)
commands=(bwrap)
missing=()
for i in "${!packages[@]}"; do
  command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  if apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; }; then
    exit 0
  fi
  echo "warning: apt-get could not install ${missing[*]}" >&2
fi
echo "note: ${missing[*]} not installed (needs root: sudo apt-get install ${missing[*]}, or your system's" \
     "package manager). Grading still works; student code then runs without an OS sandbox." >&2
exit 0
