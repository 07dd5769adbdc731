# The image every node of a cluster runs (cluster.yaml, deploy/kuberay/rayjob.yaml; on Slurm through Apptainer):
# Ray's own GPU image with this project set up in /home/ray/transfer-grids/.venv, mmcv's CUDA ops compiled at build
# time, so that a new node is ready once the image is pulled, not after a compile.
#   docker build -t REGISTRY/transfer-grids:TAG .    # about 30 minutes on 8 cores, most of it mmcv's CUDA ops
#   docker push REGISTRY/transfer-grids:TAG          # then name it in cluster.yaml (docker.image) or the RayJob
# The Ray version must be the one pyproject.toml pins (tests/test_deploy.py checks).
FROM rayproject/ray:2.60.0-py311-gpu

# The GPU architectures mmcv's CUDA ops are compiled for: V100 7.0, T4 7.5, A100 8.0, A10G 8.6, L4 8.9, H100/H200 9.0.
ARG TORCH_CUDA_ARCH_LIST="7.0;7.5;8.0;8.6;8.9;9.0"

# torch 2.13 is built for CUDA 13.0, and mmcv's ops must be compiled by the same CUDA major version: its compiler and
# the headers torch's own include, from NVIDIA's apt repository, which Ray's CUDA images carry. WordNet for the label
# sets.
USER root
RUN apt-get update && apt-get install -y --no-install-recommends build-essential wordnet-base \
        cuda-nvcc-13-0 cuda-cudart-dev-13-0 cuda-nvrtc-dev-13-0 cuda-profiler-api-13-0 \
        libcublas-dev-13-0 libcusparse-dev-13-0 libcusolver-dev-13-0 libcurand-dev-13-0 \
    && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /home/ray/transfer-grids
COPY --chown=ray:users . .
# FORCE_CUDA: compile the CUDA ops although no GPU is visible while the image builds. SETUP_TESTS=0: no test tools.
RUN CUDA_HOME=/usr/local/cuda-13.0 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" SETUP_TESTS=0 \
        PYTHON=/home/ray/anaconda3/bin/python ./setup.sh \
    && rm -rf /home/ray/.cache/pip /home/ray/.cache/transfer-grids
# `ray`, `python` and the project's modules are the project's own on every node (the same Ray version as the image's).
ENV PATH=/home/ray/transfer-grids/.venv/bin:$PATH
