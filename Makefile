# grass.c build. `make` builds every binary this machine can build: the CPU trainer always, the CUDA targets
# where nvcc exists; `make emu` the CUDA code for the CPU emulator (dev/emu) where the CUDA headers exist.
# `make config` says what it found (nvcc, GPU architecture, MPI, NCCL). `make check` runs the fast tests of the
# host code (a few minutes); `make test` every test that can run here, the emulated GPU code included, as many
# at a time as there are cores; `make test-gpu` the ones that need a GPU.

CC ?= gcc
# Value-safe math only: the CPU trainer is the reference that the GPU trainer is checked against, so the compiler
# may not reassociate sums or drop the sign of zeros; -fno-math-errno only lets sqrtf and the like skip errno (the
# same values). -fassociative-math (with -fno-signed-zeros and -fno-trapping-math) is left out because it does not
# pay: measured on the CPU trainer, the same CPU time and best step time within 2% (dev/bench/RESULTS.md,
# 2026-12-06); the one reduction worth vectorising asks for it itself (omp simd in train_llama.c's dot_product).
CFLAGS ?= -O3 -march=native -fno-math-errno
CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -fopenmp -I.
LDLIBS = -lm

# MPI (docs/design.md §7): with mpicc the CPU trainer is built with MPI for data-parallel runs under mpirun
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPICC),)
  TRAIN_CC = $(MPICC)
  TRAIN_CFLAGS = -DUSE_MPI
else
  TRAIN_CC = $(CC)
  TRAIN_CFLAGS =
endif

# CUDA: the GPU trainer where nvcc exists (bf16, and an fp32 build for tight comparison with the CPU trainer)
NVCC ?= $(shell command -v nvcc 2>/dev/null)
# the architecture of this machine's first GPU, else sm_90 (H100/H200); the kernels need sm_80 or newer
GPU_CAP := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d '. ')
GPU_ARCH ?= $(if $(GPU_CAP),sm_$(GPU_CAP),sm_90)
# host code uses OpenMP where it handles whole models (weight init, conversions)
NVCC_FLAGS = -O3 -std=c++17 -arch=$(GPU_ARCH) -I. -Xcompiler -fopenmp,-Wall,-Wextra,-Wno-unused-function,-Wno-unused-parameter
NVCC_LDLIBS = -lcublasLt -lcublas -lgomp
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
ifneq ($(MPICC),)
  # the MPI wrapper's compile and link flags: Open MPI's --showme:compile and --showme:link, else the -show of
  # MPICH (Intel MPI, MVAPICH) without its first word, the compiler
  MPI_COMPILE := $(shell $(MPICC) --showme:compile 2> /dev/null)
  MPI_LINK := $(shell $(MPICC) --showme:link 2> /dev/null)
  ifeq ($(MPI_COMPILE)$(MPI_LINK),)
    MPI_SHOW := $(wordlist 2,999,$(shell $(MPICC) -show 2> /dev/null))
    MPI_COMPILE := $(filter -I% -D% -pthread,$(MPI_SHOW))
    MPI_LINK := $(filter-out -I% -D%,$(MPI_SHOW))
  endif
  # in nvcc's spelling: -Wl,X becomes -Xlinker X and host-compiler flags such as -pthread go through -Xcompiler
  # (a pip-installed Open MPI's wrapper gives both)
  comma := ,
  NVCC_FLAGS += -DUSE_MPI -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX \
    $(foreach w,$(MPI_COMPILE),$(if $(filter -I% -D%,$(w)),$(w),-Xcompiler $(w)))
  NVCC_LDLIBS += $(foreach w,$(MPI_LINK),$(if $(filter -L% -l%,$(w)),$(w),\
    $(if $(filter -Wl$(comma)%,$(w)),-Xlinker $(patsubst -Wl$(comma)%,%,$(w)),-Xcompiler $(w))))
  # NCCL (with MPI, which broadcasts its unique id): NCCL_HOME=DIR holding include/nccl.h and lib/ (or lib64/);
  # else the CUDA toolkit's, the system's, or the one PyTorch's pip packages install (nvidia-nccl-cu12/13,
  # found through python3), in that order
  ifeq ($(origin NCCL_HOME),undefined)
    NCCL_HOME := $(firstword $(foreach d,$(CUDA_HOME) /usr /usr/local,$(if $(wildcard $(d)/include/nccl.h),$(d))))
    ifeq ($(NCCL_HOME),)
      NCCL_HOME := $(shell python3 -c 'import nvidia.nccl; print(nvidia.nccl.__path__[0])' 2> /dev/null)
    endif
  endif
  NCCL_LIB := $(firstword $(wildcard $(NCCL_HOME)/lib/libnccl.so.2 $(NCCL_HOME)/lib64/libnccl.so.2 \
                                      $(NCCL_HOME)/lib/x86_64-linux-gnu/libnccl.so.2))
  ifneq ($(and $(wildcard $(NCCL_HOME)/include/nccl.h),$(NCCL_LIB)),)
    NVCC_FLAGS += -DUSE_NCCL -I$(NCCL_HOME)/include
    # by its full name: pip's package has libnccl.so.2 only (no libnccl.so for -lnccl); found at run time by rpath
    NVCC_LDLIBS += -L$(dir $(NCCL_LIB)) -l:libnccl.so.2 -Xlinker -rpath=$(dir $(NCCL_LIB))
  endif
endif
CUDA_HEADERS = llama_model.cuh grass.cuh comm_gpu.cuh gpu_profile.cuh $(wildcard kernels/*.cuh)

PYTHON ?= $(shell [ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3)

HOST_HEADERS = $(wildcard *.h) $(wildcard tokenizer/*.h)

BINARIES = train_llama_cpu
ifneq ($(NVCC),)
  BINARIES += train_llama train_llama_fp32
  # the tensor-by-tensor test's GPU builds: only make test-gpu runs them (gpu-tests builds them alone)
  GPU_TEST_BINARIES = test/bin/test_tensors test/bin/test_tensors_fp32
endif
TEST_BINARIES = test/bin/test_reference test/bin/test_grass_select test/bin/tensors_cpu

.PHONY: all config check test test-gpu gpu-tests venv clean fuzz
all: $(BINARIES) $(TEST_BINARIES)

# what `make` found on this machine and builds with
config:
	@echo "nvcc: $(or $(NVCC),none (the CPU trainer only))"
	@echo "GPU architecture: $(if $(NVCC),$(GPU_ARCH)$(if $(GPU_CAP),, (no GPU seen; choose with GPU_ARCH=sm_XX)),-)"
	@echo "MPI: $(or $(MPICC),none (single-process trainers))"
	@echo "NCCL: $(if $(findstring USE_NCCL,$(NVCC_FLAGS)),$(NCCL_LIB),none (the GPU trainer has --comm mpi only; set NCCL_HOME))"
	@echo "python for tests: $(PYTHON)"

train_llama_cpu: train_llama.c $(HOST_HEADERS)
	$(TRAIN_CC) $(CFLAGS) $(TRAIN_CFLAGS) -o $@ $< $(LDLIBS)

train_llama: train_llama.cu $(CUDA_HEADERS) $(HOST_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LDLIBS)

train_llama_fp32: train_llama.cu $(CUDA_HEADERS) $(HOST_HEADERS)
	$(NVCC) $(NVCC_FLAGS) -DENABLE_FP32 -o $@ $< $(NVCC_LDLIBS)

test/bin/test_reference: test/test_reference.c train_llama.c $(HOST_HEADERS)
	@mkdir -p test/bin
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

test/bin/test_grass_select: test/test_grass_select.c $(HOST_HEADERS)
	@mkdir -p test/bin
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the CPU trainer's tensors of one batch (test/tensors_cpu.c), and the GPU model compared with them tensor by
# tensor (test/test_tensors.cu; test/gpu_tensors.sh, and test/t_emu_tensors.sh with the emulated builds)
test/bin/tensors_cpu: test/tensors_cpu.c train_llama.c $(HOST_HEADERS)
	@mkdir -p test/bin
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

test/bin/test_tensors: test/test_tensors.cu $(CUDA_HEADERS) $(HOST_HEADERS)
	@mkdir -p test/bin
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(NVCC_LDLIBS)

test/bin/test_tensors_fp32: test/test_tensors.cu $(CUDA_HEADERS) $(HOST_HEADERS)
	@mkdir -p test/bin
	$(NVCC) $(NVCC_FLAGS) -DENABLE_FP32 -o $@ $< $(NVCC_LDLIBS)

-include tokenizer/tokenizer.mk
include dev/emu/emu.mk
include dev/fuzz/fuzz.mk

# Python environment for the references and checks (Debian's PyTorch 1.13 plus pinned pip packages).
venv: .venv/.done
.venv/.done: dev/requirements.txt
	/usr/bin/python3 -m venv --system-site-packages .venv
	.venv/bin/pip install -q -r dev/requirements.txt
	touch $@

# make check: every test but the emulated GPU code's (t_emu_*, the GPU trainer's parts of the others: TEST_EMU=0),
# the dev/cuda and emulator builds (t_cuda_build) and fuzzing (t_fuzz), for the edit-compile-test loop.
# make test: everything, the builds and the tests each as many at a time as there are cores (TEST_JOBS).
JOBS ?= $(shell nproc 2> /dev/null || echo 2)
CHECK_TESTS = $(filter-out test/t_emu_% test/t_cuda_build.sh test/t_fuzz.sh,$(wildcard test/t_*.sh))
check:
	@$(MAKE) -s --no-print-directory -j$(JOBS) all
	PYTHON=$(PYTHON) TEST_EMU=0 test/run_all.sh $(CHECK_TESTS)

test:
	@$(MAKE) -s --no-print-directory -j$(JOBS) all emu
	PYTHON=$(PYTHON) test/run_all.sh

gpu-tests: $(GPU_TEST_BINARIES)

# the GPU tests one at a time (TEST_JOBS=1 unless set): they share the GPU
test-gpu: all gpu-tests
	PYTHON=$(PYTHON) TEST_JOBS=$${TEST_JOBS:-1} test/run_all.sh test/gpu_*.sh

clean:
	rm -rf $(BINARIES) test/bin test/tmp dev/cuda/bin dev/emu/bin dev/emu/build
