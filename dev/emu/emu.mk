# dev/emu/emu.mk: the GPU trainer and the dev/cuda kernel files built for the CPU emulator of
# dev/emu/cuda_emu.h, into dev/emu/bin/ (`make emu`; `make test` runs them). Included by the main Makefile.
# Needs the CUDA headers and python3, not a GPU and not the CUDA libraries: dev/emu/rewrite.py copies the
# sources into dev/emu/build/ with the kernel launches turned into emulator calls, the host C++ compiler
# builds them with cuda_emu.h force-included.
CXX ?= g++
EMU_CUDA_INCLUDE := $(firstword $(patsubst %/cuda_runtime.h,%,$(wildcard $(CUDA_HOME)/include/cuda_runtime.h /usr/local/cuda/include/cuda_runtime.h /usr/include/cuda_runtime.h)))
# GPU_STATE_CHUNK: the trainer moves Grass's checkpoint sections 4 KiB at a time (64 MiB on a GPU), so that the
# emulated resume tests read and write them in many parts
EMU_CXXFLAGS = -O2 -std=c++17 -U_FORTIFY_SOURCE -I$(EMU_CUDA_INCLUDE) -include dev/emu/cuda_emu.h -Wall -Wextra \
    -Wno-unknown-pragmas -Wno-unused-function -Wno-unused-parameter -Wno-clobbered -DGPU_STATE_CHUNK="((size_t)4096)"
EMU_KERNELS = rmsnorm rope swiglu embedding crossentropy adamw matmul attention grass
EMU_SOURCES = train_llama.cu llama_model.cuh grass.cuh comm_gpu.cuh gpu_profile.cuh $(wildcard kernels/*.cuh) $(HOST_HEADERS) \
    $(EMU_KERNELS:%=dev/cuda/%.cu) $(wildcard dev/cuda/*.cuh dev/cuda/*.h) dev/emu/selftest.cu test/test_tensors.cu
EMU_BINARIES = dev/emu/bin/train_llama dev/emu/bin/train_llama_fp32 $(EMU_KERNELS:%=dev/emu/bin/%) $(EMU_KERNELS:%=dev/emu/bin/%_fp32) \
    dev/emu/bin/train_llama_asan dev/emu/bin/train_llama_fp32_asan dev/emu/bin/selftest \
    dev/emu/bin/test_tensors dev/emu/bin/test_tensors_fp32
# the _asan trainers run under AddressSanitizer and UBSan: a kernel reading or writing past a cudaMalloc'd
# buffer (allocated at exactly its size) is reported (slow: a sanitizer check at every fiber switch)
EMU_ASAN = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
# the emulated trainer takes part in MPI runs too, like the real one, with --comm mpi and with --comm nccl
# (the emulator's NCCL works over MPI)
ifneq ($(MPICC),)
  EMU_MPI = -DUSE_MPI -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX $(MPI_COMPILE) $(MPI_LINK)  # as the Makefile finds them
  ifneq ($(wildcard $(EMU_CUDA_INCLUDE)/nccl.h),)
    EMU_MPI += -DUSE_NCCL
  endif
endif

.PHONY: emu
ifneq ($(EMU_CUDA_INCLUDE),)
emu: $(EMU_BINARIES)
else
emu:
	@echo "emu: no CUDA headers (cuda_runtime.h) found: the emulated GPU binaries are not built (set CUDA_HOME)"
endif

dev/emu/build/.stamp: $(EMU_SOURCES) dev/emu/rewrite.py
	python3 dev/emu/rewrite.py . dev/emu/build $(EMU_SOURCES)
	@touch $@

dev/emu/bin/train_llama: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -Idev/emu/build -o $@ dev/emu/build/train_llama.cu $(EMU_MPI) -lm

dev/emu/bin/train_llama_fp32: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -Idev/emu/build -DENABLE_FP32 -o $@ dev/emu/build/train_llama.cu $(EMU_MPI) -lm

dev/emu/bin/train_llama_asan: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) $(EMU_ASAN) -Idev/emu/build -o $@ dev/emu/build/train_llama.cu -lm

dev/emu/bin/train_llama_fp32_asan: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) $(EMU_ASAN) -Idev/emu/build -DENABLE_FP32 -o $@ dev/emu/build/train_llama.cu -lm

dev/emu/bin/selftest: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -o $@ dev/emu/build/dev/emu/selftest.cu -lm

# the GPU model against the CPU trainer's tensors of one batch (test/test_tensors.cu, test/t_emu_tensors.sh)
dev/emu/bin/test_tensors: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -Idev/emu/build -o $@ dev/emu/build/test/test_tensors.cu -lm

dev/emu/bin/test_tensors_fp32: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -Idev/emu/build -DENABLE_FP32 -o $@ dev/emu/build/test/test_tensors.cu -lm

dev/emu/bin/%_fp32: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -DENABLE_FP32 -o $@ dev/emu/build/dev/cuda/$*.cu -lm

dev/emu/bin/%: dev/emu/build/.stamp dev/emu/cuda_emu.h
	@mkdir -p dev/emu/bin
	$(CXX) -x c++ $(EMU_CXXFLAGS) -o $@ dev/emu/build/dev/cuda/$*.cu -lm

# The same sources once more, syntax only, with warnings as errors (test/t_cuda_build.sh runs it): the builds
# above print warnings without failing, and the emulated build is the only one CI has of the CUDA host code.
EMU_SYNTAX_SOURCES = dev/emu/build/train_llama.cu $(EMU_KERNELS:%=dev/emu/build/dev/cuda/%.cu)
.PHONY: emu-warnings
emu-warnings: dev/emu/build/.stamp
	@for f in $(EMU_SYNTAX_SOURCES); do for p in "" -DENABLE_FP32; do \
	    $(CXX) -x c++ $(EMU_CXXFLAGS) -Werror -fsyntax-only -Idev/emu/build $$p $(EMU_MPI) $$f || exit 1; done; done
	$(CXX) -x c++ $(EMU_CXXFLAGS) -Werror -fsyntax-only dev/emu/build/dev/emu/selftest.cu
	@echo "emu-warnings: the trainer and $(words $(EMU_KERNELS)) kernel files (bf16 and fp32) and the self-test, no warnings"
