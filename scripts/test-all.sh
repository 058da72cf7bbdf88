#!/usr/bin/env bash
# Runs every test suite. Called by `./dev.sh test` (which installs the build dependencies first).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== swift format lint"
swift format lint -r --strict Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Benchmarks

echo "== swift test"
swift build --build-tests
swift test --skip-build
