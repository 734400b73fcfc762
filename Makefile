# Checks of the CUDA C++ code that run on a machine without a GPU (docs/cuda.md).
#   make check-cuda   nvcc for sm_80 and sm_90a + ptxas -v: fails on register spills or a
#                     stack frame; the host emulator of the kernels' index math (g++)
#   make cuda-ext     the full extension (CPU + CUDA kernels + torch bindings) built against a
#                     CUDA build of torch (torch==2.14.1, cu130, in .venv-cuda), then
#                     `import greenops` and a CPU op there: it must work with no GPU driver
# .venv: scripts/setup.sh makes it
PYTHON ?= .venv/bin/python
CUDA_VENV ?= .venv-cuda
CUDA_TORCH ?= torch==2.14.1
ARCHS ?= 8.0;9.0a

.PHONY: check-cuda cuda-ext

check-cuda:
	$(PYTHON) scripts/check_cuda.py
	$(PYTHON) -m pytest -q tests/test_cuda_host.py

cuda-ext:
	bash scripts/build_cuda_ext.sh "$(CUDA_VENV)" "$(CUDA_TORCH)" "$(ARCHS)"
