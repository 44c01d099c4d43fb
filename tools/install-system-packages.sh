#!/usr/bin/env bash
# Install the system packages the grader uses, where this user can (root with apt-get); otherwise say what is
# missing and how to get it, and carry on: everything else works without them.
#   bubblewrap:    the OS sandbox student code and notebooks run in (grader/sandbox/); without it, weaker isolation
#   libseccomp2:   the kernel filter that keeps graded code from starting processes (grader/sandbox/syscalls.py)
#   chromium:      prints the notebook report to PDF (grader grade --report --pdf); without it, HTML only
#   poppler-utils: pdftoppm/pdftotext, which the tests use to read that PDF
set -u
packages=(bubblewrap libseccomp2 chromium poppler-utils)
commands=(bwrap libseccomp.so.2 chromium pdftoppm)
missing=()
for i in "${!packages[@]}"; do
  cmd="${commands[$i]}"
  if [ "$cmd" = libseccomp.so.2 ]; then
    ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing+=("${packages[$i]}")
  elif [ "$cmd" = chromium ]; then
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
      || command -v google-chrome >/dev/null 2>&1 || missing+=("${packages[$i]}")
  else
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$i]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

install() {   # apt-get install, refreshing the package lists once if the first try fails
  apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; }
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  still=()
  for p in "${missing[@]}"; do
    if install "$p"; then
      continue
    fi
    # Ubuntu names its package chromium-browser
    if [ "$p" = chromium ] && install chromium-browser && command -v chromium-browser >/dev/null 2>&1; then
      continue
    fi
    still+=("$p")
  done
  [ ${#still[@]} -eq 0 ] && exit 0
  echo "warning: apt-get could not install ${still[*]}" >&2
  missing=("${still[@]}")
fi
echo "note: ${missing[*]} not installed (needs root: sudo apt-get install ${missing[*]}, or your system's" \
     "package manager). Grading still works: without bubblewrap student code runs without an OS sandbox" \
     "(and without libseccomp2 grading refuses to start wherever it would sandbox student code);" \
     "without chromium the notebook report is HTML only." >&2
exit 0
