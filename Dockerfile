# CPU image of codir-edge with the tested dependency set. Build: docker build -t codir-edge .
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /opt/codir-edge
COPY pyproject.toml constraints.txt README.md ./
COPY codir_edge ./codir_edge
# The CPU wheel index keeps torch==2.13.0 from pulling several GB of CUDA libraries.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt ".[train,demo]" \
    && codir-edge --version

WORKDIR /work
ENTRYPOINT ["codir-edge"]
CMD ["--help"]
