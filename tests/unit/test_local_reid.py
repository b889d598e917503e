"""The re-identification model (workers/local/reid.py) on real crops: the shared OSNet export,
made batchable when loaded, gives the same embeddings as one crop at a time and tells two
different people apart; a missing or broken file is one clear configuration error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tests.support.sprite_video import OTHER_PERSON_SOURCE, PERSON_SOURCE
from workers.errors import ConfigurationError
from workers.local.reid import ReidModel, load_reid_model
from workers.media.video import extract_frames

OSNET = SHARED_DATA.parent / "models" / "osnet_x0_25_msmt17.onnx"


@pytest.fixture(scope="module")
def osnet() -> ReidModel:
    if not OSNET.is_file():
        pytest.skip(f"the shared OSNet model is not at {OSNET}")
    model = load_reid_model(str(OSNET), threads=1)
    assert model is not None
    return model


@pytest.mark.shared_data
def test_a_batch_gives_each_crop_the_embedding_it_gets_alone_and_people_differ(
    osnet: ReidModel, shared_videos: Path
) -> None:
    dog_clip = shared_videos / "sam2_01_dog.mp4"
    woman_early, woman_late = extract_frames(dog_clip, [PERSON_SOURCE[0], PERSON_SOURCE[0] + 1])
    clip, time, man_box = OTHER_PERSON_SOURCE
    man = np.asarray(extract_frames(shared_videos / clip, [time])[0].image)
    woman_box = np.array(PERSON_SOURCE[1])
    image = np.asarray(woman_early.image)
    batch = osnet.embed(image, np.array([woman_box, woman_box * [1, 1, 0.98, 0.98]]))
    alone = osnet.embed(image, woman_box[None])
    assert batch.shape == (2, 512)
    assert np.allclose(batch[0], alone[0], atol=1e-4)
    assert np.linalg.norm(batch, axis=1) == pytest.approx([1, 1], abs=1e-5)
    # Her second later (she moved a little: a slightly wider box) against another person.
    later = osnet.embed(
        np.asarray(woman_late.image), (woman_box + np.array([-0.03, 0, 0.03, 0]))[None]
    )
    other = osnet.embed(man, np.array(man_box)[None])
    assert float(alone[0] @ later[0]) > 0.7
    assert float(alone[0] @ other[0]) < 0.5


def test_a_missing_or_broken_model_is_a_configuration_error(tmp_path: Path) -> None:
    assert load_reid_model(None) is None and load_reid_model("") is None
    with pytest.raises(ConfigurationError, match=r"VTRACK_REID_MODEL: .* does not exist"):
        load_reid_model(str(tmp_path / "nothing.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="not a usable ONNX model"):
        load_reid_model(str(broken))
